/**
 * Reading pack records through a backend's ranged reads (`getRange`), for stores that are not a local folder
 * (a folder store keeps the synchronous PackReader of pack.ts: one pread per span, no promise per block). Same
 * checks and errors as PackReader: a missing pack or a range past its end is SV_ERR_STORE_CORRUPT_PACK naming the
 * pack and offset; every record header is checked against the index entry.
 *
 * Speed on object storage: one GET streams at a fraction of what the server gives to several, so a span longer
 * than READ_PART (2 MiB: a restore chunk of random data is one 8 MiB span) is read as parts of READ_PART with
 * ranged GETs all in flight at once (the backend bounds how many it sends: S3Backend's getConcurrency), and
 * the worker task asks for all of its spans before it decodes the first (workers/store-task.ts).
 *
 * Read-ahead of small spans (readSpans with `readAhead`): a restore of day 2 needs each changed block from the
 * day-2 pack, one small record per chunk, and those records lie back to back in that pack in disk order. A
 * small group (under a quarter of `readAhead`) is therefore fetched with the `readAhead` bytes of its pack that
 * follow it (capped at the pack's size, from one stat per pack: packs are immutable), kept in a few cache
 * entries, and the next chunks' records are cut from there: one GET for ~16 changed blocks instead of one each.
 * Entries are keyed by pack and byte range and hold the promise of the bytes, so chunks fetched at the same
 * time share one GET; at most READ_AHEAD_ENTRIES are kept (oldest dropped). The bytes handed out are copies
 * (small, in span-buffers.ts' shared buffers), so a cache entry is never sent to a worker.
 */
import { hasCode, SvError } from '../src/errors/index.js';
import { describeRef, sharedBackend } from './backend/open.js';
import type { BackendRef } from './backend/types.js';
import type { BlobLocation } from './index.js';
import { RECORD_HEADER_SIZE, packFileName } from './layout.js';
import { checkRecordHeader } from './pack.js';
import { isShared, takeSpanBuffer } from './backend/span-buffers.js';

/** Parts a long span is read as (see the top comment). */
export const READ_PART = 2 * 1024 * 1024;

/** The largest span of records a readBlobs task reads with one call (recordSpans' `max`). */
export const SPAN_MAX = 16 * 1024 * 1024;

/** Items [i, j) of a request, stored back to back in one pack at bytes [start, end) (record headers included). */
export interface RecordSpan { readonly i: number; readonly j: number; readonly start: number; readonly end: number }

/**
 * The spans of a list of records (payload `offsets` and `storedLengths` in packs `packIds`, in request order):
 * neighbours in one pack, back to back, are one span of at most about `max` bytes. The worker task and a
 * thread that fetches the spans for it (PointDiskReader on object storage) cut them the same way.
 */
export function recordSpans(packIds: BigUint64Array, offsets: Uint32Array, storedLengths: Uint32Array, max: number): RecordSpan[] {
  const spans: RecordSpan[] = [];
  const n = offsets.length;
  for (let i = 0; i < n;) {
    const start = offsets[i]! - RECORD_HEADER_SIZE;
    let end = offsets[i]! + storedLengths[i]!;
    let j = i + 1;
    while (j < n && packIds[j] === packIds[i] && offsets[j]! - RECORD_HEADER_SIZE === end && end - start < max) {
      end = offsets[j]! + storedLengths[j]!;
      j++;
    }
    spans.push({ i, j, start, end });
    i = j;
  }
  return spans;
}

/** Read-ahead entries kept by a reader (see the top comment). */
const READ_AHEAD_ENTRIES = 8;

interface AheadEntry { readonly pack: bigint; readonly start: number; readonly end: number; readonly bytes: Promise<Buffer> }

export class BackendPackReader {
  /** Where the packs are, for messages. */
  readonly dir: string;
  readonly #ref: BackendRef;
  readonly #part: number;
  readonly #ahead: AheadEntry[] = [];
  readonly #sizes = new Map<bigint, Promise<number>>();

  /**
   * `part`: the size of the ranged GETs a long span is cut into (default READ_PART). A caller that keeps many
   * spans in flight anyway (PointDiskReader's fetch ahead) gives a larger one: fewer requests, no gathering copy.
   */
  constructor(ref: BackendRef, part = READ_PART) {
    this.#ref = ref;
    this.#part = part;
    this.dir = `${describeRef(ref).replace(/\/$/, '')}/packs`;
  }

  /** `length` bytes at `start` of a pack (records back to back); long spans as parallel ranged reads. */
  async readSpan(packId: bigint, start: number, length: number): Promise<Buffer> {
    const key = `packs/${packFileName(packId)}`;
    const path = `${this.dir}/${packFileName(packId)}`;
    try {
      const backend = await sharedBackend(this.#ref);
      const part = this.#part;
      if (length <= part * 1.5) return await backend.getRange(key, start, length);
      const parts: Promise<Buffer>[] = [];
      for (let at = 0; at < length; at += part) parts.push(backend.getRange(key, start + at, Math.min(part, length - at)));
      for (const p of parts) p.catch(() => undefined); // each is awaited below; the first failure is thrown
      const out = Buffer.allocUnsafe(length);
      let at = 0;
      for (const p of parts) {
        const b = await p;
        b.copy(out, at);
        at += b.length;
      }
      return out;
    } catch (err) {
      if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path} named by the index does not exist`, { path }, { cause: err });
      if (hasCode(err, 'SV_ERR_BACKEND_SHORT_READ')) {
        throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path}: records at offset ${start} are cut short (expected ${length} bytes)`, { path, offset: start }, { cause: err });
      }
      throw err;
    }
  }

  /**
   * Every span's bytes, all asked at once. Spans of one pack with at most `gap` bytes between them are read as
   * one range and cut (a day-2 chunk is its old pack's records with a changed block's old record between
   * them: one request instead of one per piece, for a few KiB more). The views come with the buffers they
   * share: SharedArrayBuffers of span-buffers.ts (`shared`: sent as they are; the caller gives them back once
   * the worker has answered), or ArrayBuffers each owned whole (`transfer`: moved to a worker without copying
   * or detaching anything else).
   */
  async readSpans(packIds: BigUint64Array, spans: readonly RecordSpan[], gap = 0, readAhead = 0): Promise<{ bytes: Uint8Array[]; transfer: ArrayBuffer[]; shared: SharedArrayBuffer[] }> {
    const groups: Array<{ pack: bigint; start: number; end: number; members: number[] }> = [];
    const open = new Map<bigint, (typeof groups)[number]>();
    spans.forEach((s, k) => {
      const pack = packIds[s.i]!;
      const g = open.get(pack);
      if (g && s.start >= g.end && s.start - g.end <= gap) {
        g.end = s.end;
        g.members.push(k);
      } else {
        const fresh = { pack, start: s.start, end: s.end, members: [k] };
        groups.push(fresh);
        open.set(pack, fresh);
      }
    });
    const reads = groups.map((g) => (g.end - g.start < readAhead / 4 ? this.#readAhead(g.pack, g.start, g.end, readAhead) : this.readSpan(g.pack, g.start, g.end - g.start)));
    for (const p of reads) p.catch(() => undefined); // each is awaited below; the first failure is thrown
    const bytes = new Array<Uint8Array>(spans.length);
    const transfer: ArrayBuffer[] = [];
    const shared: SharedArrayBuffer[] = [];
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi]!;
      let b: Uint8Array = await reads[gi]!;
      if (isShared(b)) {
        shared.push(b.buffer);
      } else {
        if (b.byteOffset !== 0 || b.byteLength !== b.buffer.byteLength) {
          const own = new Uint8Array(b.byteLength);
          own.set(b);
          b = own;
        }
        transfer.push(b.buffer as ArrayBuffer);
      }
      for (const k of g.members) bytes[k] = b.subarray(spans[k]!.start - g.start, spans[k]!.end - g.start);
    }
    return { bytes, transfer, shared };
  }

  /** Bytes [start, end) of a pack, cut (copied) from a read-ahead entry that covers them, or from a new one. */
  async #readAhead(pack: bigint, start: number, end: number, readAhead: number): Promise<Buffer> {
    let entry = this.#ahead.find((e) => e.pack === pack && e.start <= start && end <= e.end);
    if (!entry) {
      const size = await this.#packSize(pack);
      const stop = Math.max(end, Math.min(size, start + readAhead));
      entry = { pack, start, end: stop, bytes: this.readSpan(pack, start, stop - start) };
      entry.bytes.catch(() => undefined);
      const mine = entry;
      this.#ahead.push(mine);
      if (this.#ahead.length > READ_AHEAD_ENTRIES) this.#ahead.shift();
      mine.bytes.catch(() => { const i = this.#ahead.indexOf(mine); if (i >= 0) this.#ahead.splice(i, 1); });
    }
    const bytes = await entry.bytes;
    const out = takeSpanBuffer(end - start);
    bytes.copy(out, 0, start - entry.start, end - entry.start);
    return out;
  }

  /** A pack's size (one stat per pack and reader; packs are immutable). */
  #packSize(pack: bigint): Promise<number> {
    let size = this.#sizes.get(pack);
    if (!size) {
      const key = `packs/${packFileName(pack)}`;
      const path = `${this.dir}/${packFileName(pack)}`;
      size = sharedBackend(this.#ref).then((b) => b.stat(key)).then((info) => info.size, (err: unknown) => {
        if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path} named by the index does not exist`, { path }, { cause: err });
        throw err;
      });
      size.catch(() => this.#sizes.delete(pack));
      this.#sizes.set(pack, size);
    }
    return size;
  }

  /** Read the record (header + payload) of `loc`, check its header; returns the payload. */
  async read(digest: Uint8Array, loc: BlobLocation): Promise<Buffer> {
    const start = loc.offset - RECORD_HEADER_SIZE;
    const buf = await this.readSpan(loc.packId, start, RECORD_HEADER_SIZE + loc.storedLength);
    checkRecordHeader(buf, digest, loc, `${this.dir}/${packFileName(loc.packId)}`, start);
    return buf.subarray(RECORD_HEADER_SIZE);
  }

  close(): void {
    /* the backend is shared by the thread (sharedBackend) */
  }
}
