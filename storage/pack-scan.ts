/**
 * Reading a pack file from its own record headers, without the index (repair: packs are self-describing).
 * Layout in layout.ts: a 32-byte pack header, then records back to back (48-byte header + payload).
 *
 * The scan is a parser of untrusted bytes: it never throws on content, allocates nothing in proportion to a
 * length field (the records are views into the buffer), and always advances, so it ends after at most
 * buf.length steps. A header that does not fit (bad magic, unknown flag, a length past the end of the file, a
 * raw length above MAX_RECORD_RAW) is reported as a damaged range, and the scan resynchronises on the next
 * record magic ("SVPR" at header offset 44) whose header fits. A record whose header fits may still hold a
 * damaged payload: the caller decodes it and checks its digest before trusting it.
 */
import {
  DIGEST_SIZE, FLAG_RAW, FLAG_ZSTD, PACK_HEADER_SIZE, PACK_MAGIC, PACK_VERSION, RECORD_HEADER_SIZE, RECORD_MAGIC,
} from './layout.js';

/** Largest raw length a record may claim (a block or a page; block sizes are far below this). */
export const MAX_RECORD_RAW = 256 * 1024 * 1024;
/** Offset of the record magic inside a record header. */
const MAGIC_AT = 44;
const MAGIC_BYTES = Buffer.alloc(4);
MAGIC_BYTES.writeUInt32LE(RECORD_MAGIC, 0);

export interface ScannedRecord {
  readonly digest: Buffer;
  /** Offset of the payload (record start + 48), as index entries give it. */
  readonly offset: number;
  readonly storedLength: number;
  readonly rawLength: number;
  readonly flag: number;
  /** The payload bytes (a view into the scanned buffer). */
  readonly payload: Buffer;
}

export interface DamagedRange {
  readonly offset: number;
  readonly length: number;
  readonly what: string;
}

export interface PackScan {
  /** Pack id from the header, or null when the header is damaged. */
  readonly packId: bigint | null;
  readonly headerProblem: string | null;
  readonly records: ScannedRecord[];
  readonly damaged: DamagedRange[];
}

/** Why the record header at `o` does not fit, or null when it does. */
function headerProblem(buf: Buffer, o: number): string | null {
  if (o + RECORD_HEADER_SIZE > buf.length) return `record header at offset ${o} is cut short (file ends at ${buf.length})`;
  const magic = buf.readUInt32LE(o + MAGIC_AT);
  if (magic !== RECORD_MAGIC) return `record magic at offset ${o + MAGIC_AT}: expected 0x${RECORD_MAGIC.toString(16)}, found 0x${magic.toString(16)}`;
  const stored = buf.readUInt32LE(o + 32);
  const raw = buf.readUInt32LE(o + 36);
  const flag = buf.readUInt8(o + 40);
  if (flag !== FLAG_RAW && flag !== FLAG_ZSTD) return `record at offset ${o}: flag ${flag}, expected ${FLAG_RAW} (raw) or ${FLAG_ZSTD} (zstd)`;
  if (raw === 0 || raw > MAX_RECORD_RAW) return `record at offset ${o}: raw length ${raw}, expected 1..${MAX_RECORD_RAW}`;
  if (flag === FLAG_RAW && stored !== raw) return `record at offset ${o}: raw record with stored length ${stored} != raw length ${raw}`;
  if (o + RECORD_HEADER_SIZE + stored > buf.length) return `record at offset ${o}: payload of ${stored} bytes runs past the end of the file (${buf.length} bytes)`;
  return null;
}

/** The next offset after `from` where a record header with a fitting header starts, or -1. */
function resync(buf: Buffer, from: number): number {
  for (let at = buf.indexOf(MAGIC_BYTES, from + MAGIC_AT); at >= 0; at = buf.indexOf(MAGIC_BYTES, at + 1)) {
    const o = at - MAGIC_AT;
    if (o > from && o >= PACK_HEADER_SIZE && headerProblem(buf, o) === null) return o;
  }
  return -1;
}

/** Scan a whole pack file's bytes. */
export function scanPack(buf: Buffer): PackScan {
  let packId: bigint | null = null;
  let problem: string | null = null;
  if (buf.length < PACK_HEADER_SIZE) problem = `file is ${buf.length} bytes, shorter than the ${PACK_HEADER_SIZE}-byte pack header`;
  else if (buf.toString('latin1', 0, 8) !== PACK_MAGIC) problem = `bad magic at offset 0: expected "${PACK_MAGIC}", found ${JSON.stringify(buf.toString('latin1', 0, 8))}`;
  else if (buf.readUInt32LE(8) !== PACK_VERSION) problem = `version at offset 8: expected ${PACK_VERSION}, found ${buf.readUInt32LE(8)}`;
  else packId = buf.readBigUInt64LE(16);
  const records: ScannedRecord[] = [];
  const damaged: DamagedRange[] = [];
  let o = PACK_HEADER_SIZE;
  while (o < buf.length) {
    const why = headerProblem(buf, o);
    if (why === null) {
      const stored = buf.readUInt32LE(o + 32);
      const start = o + RECORD_HEADER_SIZE;
      records.push({
        digest: buf.subarray(o, o + DIGEST_SIZE), offset: start, storedLength: stored, rawLength: buf.readUInt32LE(o + 36),
        flag: buf.readUInt8(o + 40), payload: buf.subarray(start, start + stored),
      });
      o = start + stored;
      continue;
    }
    const next = resync(buf, o);
    const end = next < 0 ? buf.length : next;
    damaged.push({ offset: o, length: end - o, what: why });
    o = end;
  }
  return { packId, headerProblem: problem, records, damaged };
}
