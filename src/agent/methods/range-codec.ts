/**
 * The answer payload of `view.range`: only the blocks of a range that changed, as the agent hashed and
 * compressed them at the source. Both sides use this module: the agent encodes (encodeRangeAnswer), the
 * appliance decodes (decodeRangeAnswer) and rebuilds the full RangeResult of the DiskSource contract.
 *
 * Layout: records back to back, strictly increasing block index, nothing else (no header: the call's JSON
 * result carries `count`, the number of blocks in the range). One record per block to send:
 *
 *   offset  size  field
 *   0       4     index    u32le, block index relative to the range start, < count
 *   4       32    digest   BLAKE3-256 of the uncompressed block; 32 zero bytes for a zero block
 *   36      1     flags    BLOCK_FLAG: ZERO (0) = the block is now all zeros, no payload; RAW (1); ZSTD (2)
 *   37      4     length   u32le payload bytes; 0 for ZERO, the block's size for RAW, 1..bound for ZSTD
 *   41      n     payload
 *
 * Which blocks are sent: every block the DiskSource packed (not zero, digest differs from the old one), plus
 * every block that became all zeros where the old digest was not the zero digest (a ZERO record, no payload).
 * A block not sent keeps its old digest (or the zero digest when there is no old list).
 *
 * The decoder is written for a hostile peer: every record is checked (order, index, flag, length against the
 * block's size and the zstd bound, digest of ZERO records) and the output is bounded by the range's size;
 * any violation is SV_ERR_AGENT_BAD_ANSWER. Whether a payload really has its digest is checked by the
 * caller (src/sources/agent.ts), which decompresses and hashes before anything is stored.
 */
import { SvError } from '../../errors/index.js';
import { defineStruct } from '../../formats/struct.js';
import { BLOCK_FLAG, DIGEST_LENGTH, isZeroDigest } from '../../native/types.js';
import type { RangeResult } from '../../sources/types.js';

export const RECORD = defineStruct('range record header', 41, {
  index: { offset: 0, size: 4, type: 'u32le' },
  digest: { offset: 4, size: 32, type: 'bytes' },
  flags: { offset: 36, size: 1, type: 'u8' },
  length: { offset: 37, size: 4, type: 'u32le' },
});

/** zstd's worst-case frame size for `n` input bytes (ZSTD_COMPRESSBOUND) plus its frame header slack. */
export function zstdBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0) + 64;
}

/** Encode the changed blocks of `res` (a DiskSource.backupRange result for `count` blocks, given `old`). */
export function encodeRangeAnswer(res: RangeResult, old: Uint8Array | null, count: number): Buffer {
  return Buffer.concat(encodeRangeAnswerParts(res, old, count));
}

/**
 * The same answer in pieces: record headers (one buffer for all of them, sliced) between views of
 * `res.payload` (not copied: the channel joins the pieces once, into the answer's frame).
 */
export function encodeRangeAnswerParts(res: RangeResult, old: Uint8Array | null, count: number): Uint8Array[] {
  const digests = res.digests;
  const zeros: number[] = [];
  if (old) {
    for (let i = 0; i < count; i++) {
      const at = i * DIGEST_LENGTH;
      if (isZeroDigest(digests.subarray(at, at + DIGEST_LENGTH)) && !isZeroDigest(old.subarray(at, at + DIGEST_LENGTH))) zeros.push(i);
    }
  }
  const headers = Buffer.allocUnsafe((zeros.length + res.packed.length) * RECORD.size);
  const parts: Uint8Array[] = [];
  let h = 0;
  const record = (index: number, digest: Buffer, flags: number, length: number): void => {
    RECORD.encode({ index, digest, flags, length }, headers, h);
    parts.push(headers.subarray(h, h + RECORD.size));
    h += RECORD.size;
  };
  const zeroDigest = Buffer.alloc(DIGEST_LENGTH);
  let z = 0;
  for (let j = 0; j < res.packed.length; j++) {
    const i = res.packed[j]!;
    while (z < zeros.length && zeros[z]! < i) record(zeros[z++]!, zeroDigest, BLOCK_FLAG.ZERO, 0);
    const start = res.offsets[j]!;
    const end = res.offsets[j + 1]!;
    record(i, Buffer.from(digests.buffer, digests.byteOffset + i * DIGEST_LENGTH, DIGEST_LENGTH), res.flags[j]!, end - start);
    parts.push(res.payload.subarray(start, end));
  }
  while (z < zeros.length) record(zeros[z++]!, zeroDigest, BLOCK_FLAG.ZERO, 0);
  return parts;
}

export interface RangeShape {
  /** Blocks in the range. */
  readonly count: number;
  readonly blockSize: number;
  /** Bytes in the range (the last block may be short). */
  readonly length: number;
}

function bad(why: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_AGENT_BAD_ANSWER', `view.range answer: ${why}`, details);
}

/**
 * Rebuild the full RangeResult from an answer payload: unchanged blocks keep their `old` digest (zero digest
 * without an old list); ZERO records set the zero digest; the other records are packed blocks.
 */
export function decodeRangeAnswer(payload: Uint8Array, shape: RangeShape, old: Uint8Array | null): RangeResult {
  const { count, blockSize, length } = shape;
  if (!Number.isSafeInteger(count) || count < 0 || count !== Math.ceil(length / blockSize)) {
    throw bad(`count ${count} does not match ${length} bytes in blocks of ${blockSize}`, { count, length, blockSize });
  }
  if (old && old.length !== count * DIGEST_LENGTH) throw bad(`old digest list has ${old.length} bytes for ${count} blocks`, { count, oldLength: old.length });
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const digests = new Uint8Array(count * DIGEST_LENGTH);
  if (old) digests.set(old);
  const packed: number[] = [];
  const flags: number[] = [];
  const spans: Array<[number, number]> = [];
  let payloadBytes = 0;
  let last = -1;
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < RECORD.size) throw bad(`record at byte ${at} is cut short (${buf.length - at} of ${RECORD.size} header bytes)`, { at });
    const r = RECORD.decode(buf, at);
    const details = { at, index: r.index, flags: r.flags, length: r.length };
    if (r.index >= count) throw bad(`record at byte ${at} names block ${r.index} of a ${count}-block range`, details);
    if (r.index <= last) throw bad(`record at byte ${at} names block ${r.index} after block ${last} (must increase)`, details);
    last = r.index;
    const size = Math.min(blockSize, length - r.index * blockSize);
    if (r.flags === BLOCK_FLAG.ZERO) {
      if (r.length !== 0 || !isZeroDigest(r.digest)) throw bad(`zero record for block ${r.index} carries a payload or a digest`, details);
    } else if (r.flags === BLOCK_FLAG.RAW) {
      if (r.length !== size) throw bad(`raw block ${r.index} has ${r.length} payload bytes, expected ${size}`, details);
    } else if (r.flags === BLOCK_FLAG.ZSTD) {
      if (r.length === 0 || r.length > zstdBound(size)) throw bad(`zstd block ${r.index} has ${r.length} payload bytes (bound ${zstdBound(size)})`, details);
    } else {
      throw bad(`record for block ${r.index} has unknown flag ${r.flags}`, details);
    }
    if (r.flags !== BLOCK_FLAG.ZERO && isZeroDigest(r.digest)) throw bad(`data block ${r.index} has the zero digest`, details);
    const start = at + RECORD.size;
    if (start + r.length > buf.length) throw bad(`payload of block ${r.index} runs past the answer (${r.length} bytes at ${start} of ${buf.length})`, details);
    digests.set(r.digest, r.index * DIGEST_LENGTH);
    if (r.flags !== BLOCK_FLAG.ZERO) {
      packed.push(r.index);
      flags.push(r.flags);
      spans.push([start, start + r.length]);
      payloadBytes += r.length;
    }
    at = start + r.length;
  }
  const out = new Uint8Array(payloadBytes);
  const offsets = new Uint32Array(packed.length + 1);
  let p = 0;
  spans.forEach(([s, e], j) => {
    offsets[j] = p;
    out.set(buf.subarray(s, e), p);
    p += e - s;
  });
  offsets[packed.length] = p;
  return { digests, packed: Uint32Array.from(packed), flags: Uint8Array.from(flags), offsets, payload: out };
}
