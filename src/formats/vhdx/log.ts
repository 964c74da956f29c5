/**
 * VHDX log replay into memory (MS-VHDX 2.3). The log is a circular buffer of 4 KiB sectors at the header's
 * LogOffset/LogLength. A log entry is a header sector ("loge"), descriptor sectors (32-byte "zero"/"desc"
 * descriptors following the 64-byte header) and one 4 KiB data sector per data descriptor; the CRC-32C covers
 * the whole entry with its checksum field as zero.
 *
 * Replay, when the header's LogGuid is not zero:
 *  1. every 4 KiB position of the log is tried as an entry start; an entry is valid when its signature, length,
 *     CRC, LogGuid, descriptors (signature, sequence number, 4 KiB alignment) and data sectors (signature,
 *     sequence high/low) all check out (entries may wrap around the end of the log);
 *  2. the active sequence is the one whose head (last entry) has the highest sequence number among heads whose
 *     Tail field names an entry from which consecutive entries (each starting where the previous ends, sequence
 *     number + 1) lead to the head; invalid entries after the head (a torn tail) are ignored;
 *  3. the entries from tail to head are applied in order, each descriptor in order: data descriptors write
 *     LeadingBytes + data + TrailingBytes (4 KiB) at FileOffset, zero descriptors zero ZeroLength bytes;
 *  4. the file must be at least the head's FlushedFileOffset long; it then reads as extended to LastFileOffset.
 * No valid sequence while LogGuid is set means the file cannot be trusted: SV_ERR_VHDX_LOG. The scan's work is
 * bounded (CRC bytes and sequence walk steps proportional to the log size), so a forged log fails, never hangs;
 * logs over MAX_LOG_LENGTH are refused rather than loaded.
 * The result is an overlay (file-view.ts); the source file is never written.
 */
import { SvError } from '../../errors/index.js';
import { crc32cWithZeroedField } from '../crc32c.js';
import type { ImageFile } from '../file.js';
import { badInput } from '../../errors/bad-input.js';
import { OverlayBuilder, type OverlaySegment } from './file-view.js';
import { ZERO_GUID, readGuid } from './guid.js';
import {
  DATA_DESCRIPTOR, DATA_SECTOR, LOG_DESCRIPTOR_SIZE, LOG_ENTRY_HEADER, LOG_SECTOR_SIZE, MiB, SIG_DATA, SIG_DESC, SIG_LOG_ENTRY,
  SIG_ZERO, ZERO_DESCRIPTOR,
} from './layout.js';
import type { VhdxHeader } from './structs.js';

/** Largest log this reader loads into memory (Hyper-V and qemu write 1 MiB logs). */
export const MAX_LOG_LENGTH = 256 * MiB;

export type LogOp =
  | { readonly kind: 'data'; readonly fileOffset: number; readonly bytes: Buffer }
  | { readonly kind: 'zero'; readonly fileOffset: number; readonly length: number };

export interface LogEntry {
  /** Byte offset of the entry inside the log. */
  readonly position: number;
  readonly length: number;
  readonly tail: number;
  readonly sequenceNumber: bigint;
  readonly flushedFileOffset: number;
  readonly lastFileOffset: number;
  readonly ops: readonly LogOp[];
}

export interface ReplayResult {
  readonly segments: readonly OverlaySegment[];
  readonly logicalSize: number;
  readonly entries: number;
  readonly headSequence: bigint;
}

/** Bytes [pos, pos + n) of the circular log `log`. */
function circular(log: Buffer, pos: number, n: number): Buffer {
  const p = pos % log.length;
  if (p + n <= log.length) return log.subarray(p, p + n);
  const out = Buffer.allocUnsafe(n);
  log.copy(out, 0, p);
  log.copy(out, log.length - p, 0, n - (log.length - p));
  return out;
}

/**
 * Bytes of CRC work a log scan may do: a valid log checksums each byte about once; a hostile one (every sector
 * a header claiming the whole log) would cost log length x sectors. Past the budget the scan fails (no hang).
 */
export function scanBudget(logLength: number): { left: number } {
  return { left: 4 * logLength + 64 * MiB };
}

/** Parse the entry at `pos` of the log, or null when it is not a valid entry of this log. */
export function parseLogEntry(log: Buffer, pos: number, logGuid: string, budget: { left: number } = scanBudget(log.length)): LogEntry | null {
  const head = circular(log, pos, LOG_ENTRY_HEADER.size);
  const h = LOG_ENTRY_HEADER.decode(head);
  if (h.signature !== SIG_LOG_ENTRY) return null;
  if (h.entryLength === 0 || h.entryLength % LOG_SECTOR_SIZE !== 0 || h.entryLength > log.length) return null;
  if (h.tail % LOG_SECTOR_SIZE !== 0 || h.tail >= log.length) return null;
  const seq = h.sequenceNumber.readBigUInt64LE(0);
  if (seq === 0n || readGuid(h.logGuid) !== logGuid) return null;
  const sectors = h.entryLength / LOG_SECTOR_SIZE;
  const descSectors = Math.ceil((LOG_ENTRY_HEADER.size + h.descriptorCount * LOG_DESCRIPTOR_SIZE) / LOG_SECTOR_SIZE);
  if (descSectors > sectors) return null;
  budget.left -= h.entryLength;
  if (budget.left < 0) throw new LogScanBudgetExceeded();
  const entry = circular(log, pos, h.entryLength);
  if (crc32cWithZeroedField(entry, LOG_ENTRY_HEADER.fields.checksum.offset, 4) !== h.checksum) return null;
  const ops: LogOp[] = [];
  let dataSector = descSectors;
  for (let i = 0; i < h.descriptorCount; i++) {
    const at = LOG_ENTRY_HEADER.size + i * LOG_DESCRIPTOR_SIZE;
    const sig = entry.toString('latin1', at, at + 4);
    if (sig === SIG_ZERO) {
      const d = ZERO_DESCRIPTOR.decode(entry, at);
      if (d.sequenceNumber.readBigUInt64LE(0) !== seq) return null;
      if (d.fileOffset % LOG_SECTOR_SIZE !== 0 || d.zeroLength % LOG_SECTOR_SIZE !== 0) return null;
      if (!Number.isSafeInteger(d.fileOffset + d.zeroLength)) return null;
      ops.push({ kind: 'zero', fileOffset: d.fileOffset, length: d.zeroLength });
    } else if (sig === SIG_DESC) {
      const d = DATA_DESCRIPTOR.decode(entry, at);
      if (d.sequenceNumber.readBigUInt64LE(0) !== seq) return null;
      if (d.fileOffset % LOG_SECTOR_SIZE !== 0 || !Number.isSafeInteger(d.fileOffset + LOG_SECTOR_SIZE)) return null;
      if (dataSector >= sectors) return null;
      const s = DATA_SECTOR.decode(entry, dataSector * LOG_SECTOR_SIZE);
      if (s.signature !== SIG_DATA) return null;
      if ((BigInt(s.sequenceHigh) << 32n | BigInt(s.sequenceLow)) !== seq) return null;
      const bytes = Buffer.allocUnsafe(LOG_SECTOR_SIZE);
      d.leadingBytes.copy(bytes, 0);
      s.data.copy(bytes, 8);
      d.trailingBytes.copy(bytes, 8 + s.data.length);
      ops.push({ kind: 'data', fileOffset: d.fileOffset, bytes });
      dataSector++;
    } else {
      return null;
    }
  }
  return {
    position: pos, length: h.entryLength, tail: h.tail, sequenceNumber: seq,
    flushedFileOffset: h.flushedFileOffset, lastFileOffset: h.lastFileOffset, ops,
  };
}

export class LogScanBudgetExceeded extends Error {}

/** The active sequence of a log (entries tail → head), or null when there is none. Throws LogScanBudgetExceeded. */
export function findActiveSequence(log: Buffer, logGuid: string): LogEntry[] | null {
  const byPos = new Map<number, LogEntry>();
  const budget = scanBudget(log.length);
  for (let pos = 0; pos < log.length; pos += LOG_SECTOR_SIZE) {
    const e = parseLogEntry(log, pos, logGuid, budget);
    if (e) byPos.set(pos, e);
  }
  const heads = [...byPos.values()].sort((a, b) => (a.sequenceNumber < b.sequenceNumber ? 1 : a.sequenceNumber > b.sequenceNumber ? -1 : 0));
  // Walks are bounded in total too: a forged log of many tiny consecutive entries cannot make this quadratic.
  let steps = 4 * (log.length / LOG_SECTOR_SIZE) + 1024;
  for (const head of heads) {
    const seq: LogEntry[] = [];
    let e = byPos.get(head.tail);
    let used = 0;
    while (e && e.sequenceNumber <= head.sequenceNumber && used <= log.length) {
      if (--steps < 0) throw new LogScanBudgetExceeded();
      if (seq.length > 0 && e.sequenceNumber !== seq[seq.length - 1]!.sequenceNumber + 1n) break;
      seq.push(e);
      used += e.length;
      if (e === head) return used <= log.length ? seq : null;
      e = byPos.get((e.position + e.length) % log.length);
    }
  }
  return null;
}

/** Replay the log of `file` (whose chosen header is `header`) into an overlay; null when the log is empty. */
export async function replayLog(file: ImageFile, header: VhdxHeader, headerOffset: number): Promise<ReplayResult | null> {
  if (header.logGuid === ZERO_GUID) return null;
  const { logOffset, logLength } = header;
  if (logLength === 0) {
    throw badInput('SV_ERR_VHDX_LOG', file.path, 'header logLength (LogGuid is set, so the log must be replayed)', headerOffset + 68, 'a log of at least 1 MiB', 0);
  }
  if (logLength > MAX_LOG_LENGTH) {
    throw badInput('SV_ERR_VHDX_UNSUPPORTED', file.path, 'header logLength', headerOffset + 68, `<= ${MAX_LOG_LENGTH}`, logLength);
  }
  const log = await file.readAt(logOffset, logLength, 'log');
  let seq: LogEntry[] | null;
  try {
    seq = findActiveSequence(log, header.logGuid);
  } catch (err) {
    if (!(err instanceof LogScanBudgetExceeded)) throw err;
    throw badInput('SV_ERR_VHDX_LOG', file.path, `log (LogGuid ${header.logGuid})`, logOffset,
      `log entries whose lengths add up to about the log size (${logLength} bytes)`, 'overlapping entry headers claiming far more (scan stopped)');
  }
  if (!seq) {
    throw badInput('SV_ERR_VHDX_LOG', file.path, `log (LogGuid ${header.logGuid})`, logOffset,
      'a valid active sequence of log entries to replay', 'no valid sequence');
  }
  const head = seq[seq.length - 1]!;
  if (file.size < head.flushedFileOffset) {
    throw new SvError('SV_ERR_VHDX_LOG',
      `${file.path}: log entry at offset ${logOffset + head.position}: expected a file of at least FlushedFileOffset ${head.flushedFileOffset} bytes, found ${file.size} (the file was truncated)`,
      { path: file.path, structure: 'log entry header flushedFileOffset', offset: logOffset + head.position, expected: head.flushedFileOffset, found: file.size });
  }
  let dataEnd = 0;
  for (const entry of seq) {
    for (const op of entry.ops) if (op.kind === 'data') dataEnd = Math.max(dataEnd, op.fileOffset + op.bytes.length);
  }
  const logicalSize = Math.max(file.size, head.lastFileOffset, dataEnd);
  // Apply in order; zero ranges are clipped to the logical size (zeros past it change nothing).
  const ordered = new OverlayBuilder();
  for (const entry of seq) {
    for (const op of entry.ops) {
      if (op.kind === 'data') ordered.apply(op.fileOffset, op.bytes.length, op.bytes);
      else ordered.apply(op.fileOffset, Math.min(op.length, Math.max(0, logicalSize - op.fileOffset)), null);
    }
  }
  return { segments: ordered.segments, logicalSize, entries: seq.length, headSequence: head.sequenceNumber };
}
