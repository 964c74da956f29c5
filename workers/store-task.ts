/**
 * Worker tasks of the volume store and sync engine (run in the pool's threads, registered in tasks.ts/index.ts):
 *
 * - storeBackupRange: read a block range of a disk image (4-16 MiB) — or take the range's bytes, read by the
 *   coordinator from a source the worker cannot open itself (NBD) and transferred —, hash every block and
 *   compress (native packBlocks) the blocks that differ from the previous point's digests (or all of them
 *   without those). This is the `file` and `nbd` disk sources' backupRange (src/sources/).
 *   The per-block work stays in native code; the coordinator only looks digests up and appends payloads.
 * - storeBackupSpans: storeBackupRange for several ranges of one input in one task (small ranges: one task
 *   and, for bytes, one transfer instead of one each).
 * - storeReadBlobs: read stored blobs from packs, decompress and digest-check them into one output buffer
 *   (restore; native unpackBlockInto decodes straight into it), or in `verify` mode only report which ones
 *   fail (verify). With `compact`, the output holds only the blobs, back to back (no zero-filled gaps: a
 *   chunk of a mostly-zero region costs its few blocks, not 8 MiB of zeros to fill, send and scan).
 *
 * Disk images are opened once per worker and kept while their (size, mtime) is unchanged.
 */
import { closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../src/errors/index.js';
import { openDisk } from '../src/formats/open.js';
import { assertOpenedInside } from '../src/util/confined.js';
import type { DiskFormat, DiskImage } from '../src/formats/types.js';
import type { FileSourceRef, RangeRequest, RangeResult } from '../src/sources/types.js';
import { allocAligned, hash, isZero, packBlocks, unpackBlock, unpackBlockInto } from '../src/native/index.js';
import { BLOCK_FLAG } from '../src/native/types.js';
import { toWire, type WireError } from '../src/errors/index.js';
import { packFileName, RECORD_HEADER_SIZE } from '../storage/layout.js';
import { checkRecordHeader, localPacksDir, PackReader } from '../storage/pack.js';
import type { BackendRef } from '../storage/backend/types.js';
import { BackendPackReader, recordSpans, SPAN_MAX } from '../storage/pack-backend.js';
import { moved, type Moved } from './handler.js';

/**
 * Where a range's bytes come from: a file the worker opens itself (kept open per worker: the `file` source),
 * or the bytes themselves, read by the coordinator and transferred (the `nbd` source: one connection per
 * source, whatever the pool size).
 */
export type RangeInput =
  | { readonly kind: 'file'; readonly ref: FileSourceRef & { readonly format: DiskFormat } }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array };

/** Hash and compress one range (src/sources/types.ts RangeRequest) of `input`. */
export interface BackupRangeRequest extends RangeRequest {
  readonly input: RangeInput;
}

export type BackupRangeResult = RangeResult;

/**
 * Hash and compress several ranges of one input in one task (the agent's view.spans: many small ranges, one
 * task instead of one each). With `bytes` input, the bytes are the spans' bytes back to back, in order.
 */
export interface BackupSpansRequest {
  readonly spans: readonly RangeRequest[];
  readonly input: RangeInput;
}

export interface BackupSpansResult {
  readonly results: RangeResult[];
}

const images = new Map<string, { key: string; disk: Promise<DiskImage>; rawFd: number | undefined }>();

/**
 * The open image of `path` (and, for a raw image, a descriptor of its file: raw data is read with readSync on
 * this worker thread instead of through libuv's 4 shared threads, which the pack writes and fsyncs occupy).
 */
async function image(path: string, format: DiskFormat, roots: readonly string[] | undefined): Promise<{ disk: DiskImage; rawFd: number | undefined }> {
  const st = statSync(path); // on this thread: libuv's shared threads are busy with pack writes
  const key = `${format}:${st.size}:${st.mtimeMs}:${st.ino}:${roots?.join('\0') ?? ''}`;
  let have = images.get(path);
  if (!have || have.key !== key) {
    if (have) {
      const old = have;
      void old.disk.then((d) => d.close()).catch(() => undefined);
      if (old.rawFd !== undefined) closeQuietly(old.rawFd);
    }
    const disk = openDisk(path, { format, roots });
    have = { key, disk, rawFd: undefined };
    images.set(path, have);
    disk.catch(() => images.delete(path));
  }
  const disk = await have.disk;
  // O_NONBLOCK: should the path have become a FIFO since openDisk checked it, the open cannot hang.
  if (disk.info.format === 'raw' && have.rawFd === undefined) {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (roots) assertOpenedInside(fd, path, roots);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    have.rawFd = fd;
  }
  return { disk, rawFd: have.rawFd };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* ignore */
  }
}

/** Read [offset, offset+length) of a raw image's file into `target` (synchronously, on this thread). */
function readRaw(fd: number, path: string, offset: number, length: number, target: Buffer): Buffer {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, target, done, length - done, offset + done);
    if (n === 0) {
      throw new SvError('SV_ERR_FORMAT_TRUNCATED', `${path}: raw data at offset ${offset} (${length} bytes): file shrank while reading`, {
        path, structure: 'raw data', offset: offset + done,
      });
    }
    done += n;
  }
  return target;
}

export async function backupRangeTask(req: BackupRangeRequest): Promise<Moved<BackupRangeResult>> {
  const r = await backupRange(req);
  return moved(r, buffersOf([r.digests, r.packed, r.flags, r.offsets, r.payload]));
}

export async function backupSpansTask(req: BackupSpansRequest): Promise<Moved<BackupSpansResult>> {
  const results: RangeResult[] = [];
  const total = req.spans.reduce((n, s) => n + s.length, 0);
  if (req.input.kind === 'bytes') bytesOf(req.input.bytes, total);
  let at = 0;
  for (const span of req.spans) {
    const input: RangeInput = req.input.kind === 'bytes' ? { kind: 'bytes', bytes: req.input.bytes.subarray(at, at + span.length) } : req.input;
    results.push(await backupRange({ ...span, input }));
    at += span.length;
  }
  return moved({ results }, buffersOf(results.flatMap((r) => [r.digests, r.packed, r.flags, r.offsets, r.payload])));
}

/** Every distinct, non-empty ArrayBuffer under these views (to transfer back). */
function buffersOf(views: ArrayBufferView[]): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const v of views) if (v.byteLength > 0 && v.buffer instanceof ArrayBuffer) set.add(v.buffer);
  return [...set];
}

let readBuffer = Buffer.alloc(0);

/** The range's bytes from a file source (opened once per worker). */
async function readFile(ref: FileSourceRef & { readonly format: DiskFormat }, offset: number, length: number): Promise<Buffer> {
  const { disk, rawFd } = await image(ref.path, ref.format, ref.roots);
  // One read buffer per worker, reused: fresh 8-16 MiB allocations cost a page fault per 4 KiB.
  if (readBuffer.length < length) readBuffer = Buffer.allocUnsafe(Math.max(length, 8 * 1024 * 1024));
  const target = readBuffer.subarray(0, length);
  return rawFd !== undefined && offset + length <= disk.info.virtualSize ? readRaw(rawFd, ref.path, offset, length, target) : disk.read(offset, length, target);
}

/** Bytes handed over by the coordinator: exactly the range. */
function bytesOf(bytes: Uint8Array, length: number): Buffer {
  if (bytes.byteLength !== length) {
    throw new SvError('SV_ERR_SOURCE_BAD_RANGE', `storeBackupRange: ${bytes.byteLength} bytes handed over for a range of ${length}`, { length, given: bytes.byteLength });
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function backupRange(req: BackupRangeRequest): Promise<BackupRangeResult> {
  const buf = req.input.kind === 'bytes' ? bytesOf(req.input.bytes, req.length) : await readFile(req.input.ref, req.offset, req.length);
  const bs = req.blockSize;
  const count = Math.ceil(req.length / bs);
  if (!req.oldDigests) {
    const r = packBlocks(buf, bs, req.level);
    const packedList: number[] = [];
    for (let i = 0; i < r.count; i++) if (r.flags[i] !== 0) packedList.push(i);
    const packed = Uint32Array.from(packedList);
    const flags = new Uint8Array(packed.length);
    const offsets = new Uint32Array(packed.length + 1);
    packed.forEach((b, j) => {
      flags[j] = r.flags[b]!;
      offsets[j] = r.offsets[b]!;
      offsets[j + 1] = r.offsets[b + 1]!;
    });
    // Zero blocks have empty payloads, so the packed blocks' payloads are contiguous in r.payload.
    return { digests: r.digests, packed, flags, offsets, payload: r.payload };
  }
  const old = req.oldDigests;
  const digests = Buffer.alloc(count * 32);
  const changed: number[] = [];
  let gatherBytes = 0;
  for (let i = 0; i < count; i++) {
    const block = buf.subarray(i * bs, Math.min((i + 1) * bs, req.length));
    if (isZero(block)) continue; // zero digest; the coordinator compares it with the old one
    const h = hash(block);
    h.copy(digests, i * 32);
    if (Buffer.compare(h, old.subarray(i * 32, i * 32 + 32)) !== 0) {
      changed.push(i);
      gatherBytes += block.length;
    }
  }
  const toPack = changed;
  if (!toPack.length) return { digests, packed: new Uint32Array(0), flags: new Uint8Array(0), offsets: new Uint32Array(1), payload: new Uint8Array(0) };
  const gather = Buffer.allocUnsafe(gatherBytes);
  let at = 0;
  for (const i of toPack) {
    at += buf.copy(gather, at, i * bs, Math.min((i + 1) * bs, req.length));
  }
  const r = packBlocks(gather, bs, req.level);
  return { digests, packed: Uint32Array.from(toPack), flags: r.flags, offsets: r.offsets, payload: r.payload };
}

export interface ReadBlobsRequest {
  /** The store whose packs are read (a serialisable reference: workers open it themselves). */
  readonly store: BackendRef;
  /** 'read': decode into `output`; 'verify': only check, report failures. */
  readonly mode: 'read' | 'verify';
  readonly digests: Uint8Array;
  readonly packIds: BigUint64Array;
  readonly offsets: Uint32Array;
  readonly storedLengths: Uint32Array;
  readonly rawLengths: Uint32Array;
  readonly flags: Uint8Array;
  /** Where each blob goes in the output (read mode). */
  readonly outOffsets: Uint32Array;
  readonly outLength: number;
  /**
   * Read mode: the output is only the blobs' bytes back to back, in request order (sum of rawLengths;
   * `outOffsets` and `outLength` unused) instead of an `outLength` buffer with zeros between blobs.
   */
  readonly compact?: boolean;
  /**
   * Read mode, not compact: decode into this (exactly `outLength` bytes, transferred in and back as `output`)
   * instead of a fresh buffer. Every byte of it is written (blobs, zeros between them).
   */
  readonly into?: Uint8Array;
  /**
   * The bytes of each span of the request (recordSpans(packIds, offsets, storedLengths, SPAN_MAX), in order),
   * fetched by the sender (object storage: the main thread keeps the GETs of several tasks in flight while the
   * workers decode); the worker then reads nothing. Every record is still checked as when read here.
   */
  readonly spanBytes?: Uint8Array[];
}

export interface ReadBlobsResult {
  /** The decoded bytes (read mode; zero-filled where no blob was placed). */
  readonly output: Uint8Array;
  /** Failures (verify mode; read mode throws on the first). */
  readonly failures: Array<{ index: number; error: WireError }>;
  readonly bytesRead: number;
}

export async function readBlobsTask(req: ReadBlobsRequest): Promise<Moved<ReadBlobsResult>> {
  const r = await readBlobs(req);
  return moved(r, buffersOf([r.output]));
}

let spanBuffer = Buffer.alloc(0);
/** Records of one direct span at most (two iovecs each, under IOV_MAX = 1,024). */
const DIRECT_MAX = 500;
const directHeaders = Buffer.alloc(DIRECT_MAX * RECORD_HEADER_SIZE);

/**
 * Read mode, a folder store, every record of the span [i, j) stored raw and wanted whole: read the payloads
 * with one preadv straight into their places in `output` (headers aside), then check each header and digest
 * there. One copy (page cache to output) instead of two (to the span buffer, then unpacked into the output):
 * an export's sequential reads are mostly this. Returns the output end of the last record, or -1 when the
 * span does not qualify or the pack is short (the caller then takes the ordinary path, which reports it).
 */
function readDirect(packs: PackReader, req: ReadBlobsRequest, i: number, j: number, start: number, end: number, output: Buffer, compact: boolean, filled: number, digests: Buffer): number {
  if (j - i > DIRECT_MAX) return -1;
  const targets: Buffer[] = [];
  const places: number[] = [];
  let at = filled;
  for (let k = i; k < j; k++) {
    const len = req.rawLengths[k]!;
    if (req.flags[k] !== BLOCK_FLAG.RAW || req.storedLengths[k] !== len) return -1;
    const to = compact ? at : req.outOffsets[k]!;
    if (to < at || to + len > output.length) return -1;
    targets.push(directHeaders.subarray((k - i) * RECORD_HEADER_SIZE, (k - i + 1) * RECORD_HEADER_SIZE), output.subarray(to, to + len));
    places.push(to);
    at = to + len;
  }
  if (packs.readSpanInto(req.packIds[i]!, start, end - start, targets) !== end - start) return -1;
  let last = filled;
  for (let k = i; k < j; k++) {
    const digest = digests.subarray(k * 32, k * 32 + 32);
    const loc = { packId: req.packIds[i]!, offset: req.offsets[k]!, storedLength: req.storedLengths[k]!, rawLength: req.rawLengths[k]!, flag: req.flags[k]! };
    checkRecordHeader(targets[(k - i) * 2]!, digest, loc, join(packs.dir, packFileName(loc.packId)), loc.offset - RECORD_HEADER_SIZE);
    const to = places[k - i]!;
    if (!hash(output.subarray(to, to + loc.rawLength)).equals(digest)) {
      throw new SvError('SV_ERR_NATIVE_DIGEST_MISMATCH', `block ${digest.toString('hex')} in pack ${loc.packId.toString(16)} at ${loc.offset}: its bytes do not have its digest`, { digest: digest.toString('hex'), offset: loc.offset });
    }
    if (!compact && to > last) output.fill(0, last, to);
    last = to + loc.rawLength;
  }
  return last;
}

async function readBlobs(req: ReadBlobsRequest): Promise<ReadBlobsResult> {
  // A reader per task: no pack descriptor outlives the task (gc may delete packs). A folder store is read with
  // synchronous preads (the fast path); any other store through the backend's ranged reads.
  const local = localPacksDir(req.store);
  const packs = local !== undefined ? new PackReader(local) : new BackendPackReader(req.store);
  const n = req.flags.length;
  const read = req.mode === 'read';
  const compact = read && req.compact === true;
  let compactLength = 0;
  if (compact) for (let k = 0; k < n; k++) compactLength += req.rawLengths[k]!;
  // Page-aligned: every 64 KiB block of it then qualifies for the raw writer's O_DIRECT writes (no copy).
  const reuse = read && !compact && req.into !== undefined && req.into.byteLength === req.outLength;
  const output = reuse ? Buffer.from(req.into!.buffer, req.into!.byteOffset, req.into!.byteLength) : read ? allocAligned(compact ? compactLength : req.outLength) : Buffer.alloc(0);
  let filled = 0; // output bytes [0, filled) are written or zeroed (items come in output order)
  const failures: Array<{ index: number; error: WireError }> = [];
  let bytesRead = 0;
  const digests = Buffer.from(req.digests.buffer, req.digests.byteOffset, req.digests.byteLength);
  const fail = (i: number, err: unknown): void => {
    if (read) {
      packs.close();
      throw err;
    }
    failures.push({ index: i, error: toWire(err) });
  };
  // Spans: items stored back to back in one pack, each read with one call.
  const spans = recordSpans(req.packIds, req.offsets, req.storedLengths, SPAN_MAX);
  // A backend store (object storage): every span asked at once, so the ranged GETs are in flight together
  // (pack-backend.ts), or fetched already by the thread that sent the task (`spanBytes`); a folder store reads
  // each span synchronously when it comes to it.
  let ahead: Promise<Buffer>[] | undefined;
  if (req.spanBytes) {
    const given = req.spanBytes;
    if (given.length !== spans.length || spans.some((s, k) => given[k]!.byteLength !== s.end - s.start)) {
      throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `readBlobs: ${given.length} fetched spans do not match the request's ${spans.length} spans`, {});
    }
    ahead = given.map((b) => Promise.resolve(Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
  } else if (packs instanceof BackendPackReader) {
    ahead = spans.map((s) => {
      const p = packs.readSpan(req.packIds[s.i]!, s.start, s.end - s.start);
      p.catch(() => undefined);
      return p;
    });
  }
  for (let si = 0; si < spans.length; si++) {
    const { i, j, start, end } = spans[si]!;
    const packId = req.packIds[i]!;
    if (read && packs instanceof PackReader) {
      let last = -1;
      try {
        last = readDirect(packs, req, i, j, start, end, output, compact, filled, digests);
      } catch (err) {
        fail(i, err); // read mode: closes the packs and throws
      }
      if (last >= 0) {
        for (let k = i; k < j; k++) bytesRead += req.storedLengths[k]!;
        filled = last;
        continue;
      }
    }
    if (!ahead && spanBuffer.length < end - start) spanBuffer = Buffer.allocUnsafe(Math.max(end - start, SPAN_MAX));
    let span: Buffer | undefined;
    try {
      span = ahead ? await ahead[si]! : (packs as PackReader).readSpan(packId, start, end - start, spanBuffer);
    } catch (err) {
      if (j - i === 1) fail(i, err);
    }
    for (let k = i; k < j; k++) {
      const digest = digests.subarray(k * 32, k * 32 + 32);
      const loc = { packId, offset: req.offsets[k]!, storedLength: req.storedLengths[k]!, rawLength: req.rawLengths[k]!, flag: req.flags[k]! };
      try {
        let payload: Buffer;
        if (span) {
          const at = loc.offset - RECORD_HEADER_SIZE - start;
          checkRecordHeader(span.subarray(at, at + RECORD_HEADER_SIZE), digest, loc, packs.dir, loc.offset - RECORD_HEADER_SIZE);
          payload = span.subarray(at + RECORD_HEADER_SIZE, at + RECORD_HEADER_SIZE + loc.storedLength);
        } else {
          const one = packs.read(digest, loc); // the span failed: find which record is short
          payload = one instanceof Promise ? await one : one;
        }
        bytesRead += payload.length;
        if (compact) {
          filled += unpackBlockInto(payload, loc.flag, digest, output, filled, loc.rawLength);
        } else if (read) {
          const to = req.outOffsets[k]!;
          if (to > filled) output.fill(0, filled, to);
          const size = Math.max(0, Math.min(loc.rawLength, output.length - to)); // a blob past the end is cut, as before
          if (size === loc.rawLength) unpackBlockInto(payload, loc.flag, digest, output, to, size);
          else unpackBlock(payload, loc.flag, digest, loc.rawLength).copy(output, to);
          filled = Math.max(filled, to + size);
        } else {
          unpackBlock(payload, loc.flag, digest, loc.rawLength);
        }
      } catch (err) {
        fail(k, err);
      }
    }
  }
  if (read && filled < output.length) output.fill(0, filled);
  packs.close();
  return { output, failures, bytesRead };
}
