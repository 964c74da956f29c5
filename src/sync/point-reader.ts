/**
 * PointDiskReader: reads one disk of a recovery point, either as ordered chunks through the worker pool
 * (restore, downloads, large reads of point images) or block by block on the calling thread (blockDigest +
 * readBlob: the point images of src/points/ for small random reads). Its own module so that readers which only
 * browse (`files ls`) do not load the format writers restore needs.
 *
 * On object storage the chunk's packed bytes are fetched on the calling thread (ranged GETs through the thread's
 * shared backend) and handed to the worker with the task (`spanBytes`: shared memory, span-buffers.ts, or
 * transferred): the GETs of every chunk a
 * caller reads ahead are then in flight together while the workers only decode, where a worker fetching its
 * own chunk sat idle for each chunk's round trips (and each worker loaded the S3 client and kept its own
 * connections).
 *
 * The point's inner index levels are read at open; leaf pages on first touch (kept in the given page cache, or
 * the last few). Readers take no lock: everything a published point names is immutable; when a pack vanished
 * (a concurrent gc repacked it) the read is done again once with a freshly loaded index.
 */
import { hasCode, SvError } from '../errors/index.js';
import { runTask } from '../pool/index.js';
import { BlobReader } from '../../storage/blobs.js';
import { isZeroDigest } from '../../storage/codec.js';
import type { BlobIndex } from '../../storage/index.js';
import { DIGEST_SIZE } from '../../storage/layout.js';
import type { DiskRecord, PointManifest } from '../../storage/manifest.js';
import { loadLevels, readPage, treeShape, type TreeShape } from '../../storage/tree.js';
import type { ReadBlobsRequest } from '../../workers/store-task.js';
import { BackendPackReader, recordSpans, SPAN_MAX } from '../../storage/pack-backend.js';
import { describeRef } from '../../storage/backend/open.js';
import { giveBackSpanBuffers } from '../../storage/backend/span-buffers.js';
import type { BackendRef } from '../../storage/backend/types.js';

/** The non-zero blocks of a chunk: `data` holds them back to back; block `i` of them is at chunk offset `at[i]`. */
export interface ChunkBlocks {
  readonly data: Buffer;
  /** Offset in the chunk of each present block (ascending, multiples of the block size). */
  readonly at: Uint32Array;
  /** Size of each present block (the block size, shorter only at the end of the disk). */
  readonly sizes: Uint32Array;
}

/**
 * Longest ranged GET of the fetch ahead (#fetch): an 8 MiB chunk's span in one request (the chunks give the
 * parallelism), and spans of one pack merged up to this (16 MiB: S3 restore 821-845 → 875-887 MB/s on the s3
 * bench against 8 MiB).
 */
const FETCH_PART = 16 * 1024 * 1024;

/** Spans of one pack this close are fetched as one range (readSpans): a few changed blocks' old records. */
const FETCH_GAP = 512 * 1024;

/** Small spans are fetched with this much of their pack that follows (readSpans' read-ahead: day-2 blocks). */
const FETCH_AHEAD = 1024 * 1024;

interface Located {
  readonly n: number;
  readonly req: Omit<ReadBlobsRequest, 'compact'>;
}

/** Where PointDiskReader keeps decoded index pages when given one (src/points/cache.ts), keyed by hex digest. */
export interface PageCache {
  get(key: string): Buffer | undefined;
  set(key: string, value: Buffer): void;
}

/**
 * Reads a disk of a point: as ordered chunks through the worker pool (restore, downloads), or block by block on
 * the calling thread (blockDigest + readBlob: the point images of src/points/ for small random reads).
 */
export class PointDiskReader {
  readonly shape: TreeShape;
  readonly disk: DiskRecord;
  #reader: BlobReader;
  readonly #store: BackendRef;
  readonly #reload: (() => Promise<BlobIndex>) | undefined;
  #levels: Buffer[] = [];
  #leafCache = new Map<number, Buffer>();
  readonly #pages: PageCache | undefined;
  /** Object storage: spans fetched on this thread for the worker tasks (#fetch). */
  #packs: BackendPackReader | undefined;

  /**
   * `reload` gives a fresh index when a pack vanished under a read (a concurrent gc repacked it). `pages`: a
   * cache for index pages (else the last few leaves are kept).
   */
  constructor(store: BackendRef, index: BlobIndex, m: PointManifest, disk: DiskRecord, reload?: () => Promise<BlobIndex>, pages?: PageCache) {
    this.#reload = reload;
    this.#pages = pages;
    this.disk = disk;
    this.shape = treeShape(disk.virtualSize, m.blockSize, m.fanout);
    this.#reader = new BlobReader(store, index, reload);
    this.#store = store;
  }

  async open(): Promise<void> {
    this.#levels = await loadLevels(this.#readPage, this.shape, Buffer.from(this.disk.root, 'hex'));
  }

  readonly #readPage = async (digest: Buffer): Promise<Buffer> => {
    if (!this.#pages) return this.#reader.readPage(digest);
    const key = digest.toString('hex');
    let page = this.#pages.get(key);
    if (!page) {
      page = await this.#reader.readPage(digest);
      this.#pages.set(key, page);
    }
    return page;
  };

  async #leaf(leaf: number): Promise<Buffer> {
    let page = this.#leafCache.get(leaf);
    if (!page) {
      page = await readPage(this.#readPage, this.shape, 0, leaf, this.#levels[0]!.subarray(leaf * 32, leaf * 32 + 32));
      if (this.#leafCache.size > 8) this.#leafCache.clear();
      this.#leafCache.set(leaf, page);
    }
    return page;
  }

  /** The leaf page `leaf` (its block digests), or null when all its blocks are zero. */
  async leafPage(leaf: number): Promise<Buffer | null> {
    if (isZeroDigest(this.#levels[0]!, leaf * DIGEST_SIZE)) return null;
    return this.#retrying(() => this.#leaf(leaf));
  }

  /** The digest of block `block`, or null when the block is all zero. */
  async blockDigest(block: number): Promise<Buffer | null> {
    const leaf = Math.floor(block / this.shape.fanout);
    const page = await this.leafPage(leaf);
    if (!page) return null;
    const slot = (block - leaf * this.shape.fanout) * DIGEST_SIZE;
    return isZeroDigest(page, slot) ? null : page.subarray(slot, slot + DIGEST_SIZE);
  }

  /** Decode one blob on this thread (digest-checked; looked up again in a fresh index if gc moved it). */
  readBlob(digest: Buffer): Promise<Buffer> {
    return this.#reader.readPage(digest);
  }

  /**
   * Bytes [offset, offset+length) (block aligned) of the disk, or null when all zero. `into` (exactly `length`
   * bytes, its whole ArrayBuffer given up) is where the worker decodes when given: no fresh buffer.
   */
  async readChunk(offset: number, length: number, signal?: AbortSignal, into?: Buffer): Promise<Buffer | null> {
    return this.#retrying(async () => {
      const located = await this.#locate(offset, length);
      if (!located) return null;
      // `into` is given up to the worker (transferred); a retry after a failed task finds it detached.
      const use = into && into.byteLength === length ? into : undefined;
      const fetched = await this.#fetch(located);
      const transfer = [...(use ? [use.buffer as ArrayBuffer] : []), ...(fetched?.transfer ?? [])];
      const r = await runTask('storeReadBlobs', { ...located.req, ...(use ? { into: use } : {}), ...(fetched ? { spanBytes: fetched.bytes } : {}) }, { signal, transfer: transfer.length ? transfer : undefined });
      if (fetched) giveBackSpanBuffers(fetched.shared); // the worker has answered: nothing reads them now
      return Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength);
    });
  }

  /**
   * The non-zero blocks of bytes [offset, offset+length) (block aligned), compact (see ChunkBlocks), or null
   * when all are zero. Every block is digest-checked as readChunk's.
   */
  async readBlocks(offset: number, length: number, signal?: AbortSignal): Promise<ChunkBlocks | null> {
    return this.#retrying(async () => {
      const located = await this.#locate(offset, length);
      if (!located) return null;
      const fetched = await this.#fetch(located);
      const r = await runTask('storeReadBlobs', { ...located.req, compact: true, ...(fetched ? { spanBytes: fetched.bytes } : {}) }, { signal, transfer: fetched?.transfer });
      if (fetched) giveBackSpanBuffers(fetched.shared); // the worker has answered: nothing reads them now
      const data = Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength);
      return { data, at: located.req.outOffsets, sizes: located.req.rawLengths };
    });
  }

  /**
   * Per `unit` bytes of the disk (the last unit may be short): 1 when a block of it is not all zero (its digest
   * is not the zero digest: backup records every all-zero block so). Reads each non-zero leaf page once; the
   * result costs one byte per unit (the streamed downloads' layout: src/sync/image-stream.ts).
   */
  async presence(unit: number, signal?: AbortSignal): Promise<Uint8Array> {
    const { blockSize: bs, fanout: F, levelCounts } = this.shape;
    const size = this.disk.virtualSize;
    const out = new Uint8Array(Math.ceil(size / unit));
    for (let leaf = 0; leaf < levelCounts[0]!; leaf++) {
      if (isZeroDigest(this.#levels[0]!, leaf * DIGEST_SIZE)) continue;
      if (signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'reading the block map cancelled', {});
      const page = await this.#retrying(() => this.#leaf(leaf));
      for (let slot = 0; slot < page.length; slot += DIGEST_SIZE) {
        if (isZeroDigest(page, slot)) continue;
        const start = (leaf * F + slot / DIGEST_SIZE) * bs;
        out.fill(1, Math.floor(start / unit), Math.floor((Math.min(start + bs, size) - 1) / unit) + 1);
      }
    }
    return out;
  }

  async #retrying<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      if (!this.#reload || !hasCode(err, 'SV_ERR_STORE_CORRUPT_PACK')) throw err;
      this.#reader.close();
      this.#reader = new BlobReader(this.#store, await this.#reload(), this.#reload);
      return read();
    }
  }

  /**
   * On object storage, the bytes of the request's spans, fetched on this thread (see the top comment); on a
   * folder store undefined (the worker reads the packs itself, synchronously).
   */
  async #fetch(located: Located): Promise<{ bytes: Uint8Array[]; transfer: ArrayBuffer[]; shared: SharedArrayBuffer[] } | undefined> {
    if (this.#store.kind === 'fs') return undefined;
    const { packIds, offsets, storedLengths } = located.req;
    this.#packs ??= new BackendPackReader(this.#store, FETCH_PART);
    return this.#packs.readSpans(packIds, recordSpans(packIds, offsets, storedLengths, SPAN_MAX), FETCH_GAP, FETCH_AHEAD);
  }

  /** The worker request for the non-zero blocks of [offset, offset+length), or null when all are zero. */
  async #locate(offset: number, length: number): Promise<Located | null> {
    const bs = this.shape.blockSize;
    const F = this.shape.fanout;
    const first = offset / bs;
    const count = Math.ceil(length / bs);
    const digests: Buffer[] = [];
    const outOffsets: number[] = [];
    for (let i = 0; i < count; i++) {
      const b = first + i;
      const leaf = Math.floor(b / F);
      if (isZeroDigest(this.#levels[0]!, leaf * 32)) continue;
      const page = await this.#leaf(leaf);
      const slot = (b - leaf * F) * DIGEST_SIZE;
      if (isZeroDigest(page, slot)) continue;
      digests.push(page.subarray(slot, slot + DIGEST_SIZE));
      outOffsets.push(i * bs);
    }
    if (!digests.length) return null;
    const n = digests.length;
    const packIds = new BigUint64Array(n);
    const offsets = new Uint32Array(n);
    const stored = new Uint32Array(n);
    const raw = new Uint32Array(n);
    const flags = new Uint8Array(n);
    digests.forEach((d, i) => {
      const loc = this.#reader.locate(d);
      const expected = Math.min(bs, length - outOffsets[i]!);
      if (loc.rawLength !== expected) {
        const hex = Buffer.from(d).toString('hex');
        throw new SvError('SV_ERR_STORE_CORRUPT_INDEX', `${describeRef(this.#store)}: index entry of block ${hex} (disk offset ${offset + outOffsets[i]!}) gives ${loc.rawLength} raw bytes, expected ${expected}`, {
          digest: hex, offset: offset + outOffsets[i]!, expected, found: loc.rawLength,
        });
      }
      packIds[i] = loc.packId;
      offsets[i] = loc.offset;
      stored[i] = loc.storedLength;
      raw[i] = loc.rawLength;
      flags[i] = loc.flag;
    });
    return {
      n,
      req: {
        store: this.#store, mode: 'read', digests: Buffer.concat(digests), packIds, offsets, storedLengths: stored, rawLengths: raw, flags,
        outOffsets: Uint32Array.from(outOffsets), outLength: length,
      },
    };
  }

  close(): void {
    this.#reader.close();
  }
}
