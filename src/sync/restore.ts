/**
 * restore(): any point, any disk, to a new image (vhdx/vhd/raw; default the source disk's format) through the
 * format writers (writeDisk: temp file + fsync + rename; an existing output is refused unless `force`).
 *
 * The point's tree is read on this thread (pages are small); blocks are read, decompressed and digest-checked
 * by worker tasks (storeReadBlobs) 8 MiB of disk at a time, several in flight, handed to the writer in order
 * as blocks of the store's block size (null for all-zero ones, which the writers leave sparse). Readers take no lock: everything a
 * published point names is immutable; when a pack vanished (a concurrent gc repacked it) the chunk is read again
 * once with a freshly loaded index.
 *
 * When the store's block size is the writer's block size (64 KiB and up: the default), chunks are read
 * compact (readBlocks): the worker returns only the non-zero blocks back to back, decoded straight into that
 * buffer, and zero blocks are yielded as null without any bytes. A chunk of a zero region with a few
 * scattered changed blocks (day 2/3 of the benchmark) then costs those blocks, not 8 MiB of zeros to fill in
 * the worker, transfer, and scan again in the writer; and the output is smaller (lower peak RSS).
 */
import { hasCode, SvError } from '../errors/index.js';
import type { BlockSource } from '../formats/types.js';
import { writeDisk } from '../formats/write.js';
import { poolSize, runTask } from '../pool/index.js';
import { BlobReader } from '../../storage/blobs.js';
import { isZeroDigest } from '../../storage/codec.js';
import type { BlobIndex } from '../../storage/index.js';
import { DIGEST_SIZE } from '../../storage/layout.js';
import type { DiskRecord, PointManifest } from '../../storage/manifest.js';
import { loadLevels, readPage, treeShape, type TreeShape } from '../../storage/tree.js';
import { openStore } from './backup.js';
import { describeRef } from '../../storage/backend/open.js';
import type { BackendRef } from '../../storage/backend/types.js';
import type { RestoreOptions, RestoreResult } from './types.js';
import type { ReadBlobsRequest } from '../../workers/store-task.js';

const CHUNK_BYTES = 8 * 1024 * 1024;
const OUT_BLOCK = 64 * 1024;

/** The non-zero blocks of a chunk: `data` holds them back to back; block `i` of them is at chunk offset `at[i]`. */
export interface ChunkBlocks {
  readonly data: Buffer;
  /** Offset in the chunk of each present block (ascending, multiples of the block size). */
  readonly at: Uint32Array;
  /** Size of each present block (the block size, shorter only at the end of the disk). */
  readonly sizes: Uint32Array;
}

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

  /** Bytes [offset, offset+length) (block aligned) of the disk, or null when all zero. */
  async readChunk(offset: number, length: number, signal?: AbortSignal): Promise<Buffer | null> {
    return this.#retrying(async () => {
      const located = await this.#locate(offset, length);
      if (!located) return null;
      const r = await runTask('storeReadBlobs', located.req, { signal });
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
      const r = await runTask('storeReadBlobs', { ...located.req, compact: true }, { signal });
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

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = Date.now();
  const store = await openStore(opts.store);
  const m = await store.resolvePoint(opts.source, opts.point);
  const diskIndex = opts.disk ?? 0;
  const disk = m.disks[diskIndex];
  if (!disk) {
    throw new SvError('SV_ERR_SYNC_DISK_NOT_FOUND', `point ${m.source}@${m.id} has ${m.disks.length} disk(s) (0..${m.disks.length - 1}), not disk ${diskIndex}`, { point: m.id, disk: diskIndex });
  }
  const format = opts.format ?? disk.format;
  const pdr = new PointDiskReader(store.ref, await store.loadIndex(), m, disk, () => store.loadIndex());
  await pdr.open();
  const vs = disk.virtualSize;
  const outBlock = Math.max(OUT_BLOCK, m.blockSize);
  const chunk = Math.max(CHUNK_BYTES, outBlock);
  let bytesWritten = 0;
  const source: BlockSource = {
    virtualSize: vs,
    blockSize: outBlock,
    async *blocks() {
      const chunks = Math.ceil(vs / chunk);
      // Compact reads when one stored block is one output block (see the top comment).
      const compact = m.blockSize === outBlock;
      const queue: Array<Promise<Buffer | ChunkBlocks | null>> = [];
      let next = 0;
      const limit = poolSize() * 3; // chunks read ahead: the workers keep decoding while the writer copies
      for (let c = 0; c < chunks; c++) {
        while (queue.length < limit && next < chunks) {
          const off = next * chunk;
          const len = Math.min(chunk, vs - off);
          const p = compact ? pdr.readBlocks(off, len, opts.signal) : pdr.readChunk(off, len, opts.signal);
          p.catch(() => undefined);
          queue.push(p);
          next++;
        }
        const got = await queue.shift()!;
        const off = c * chunk;
        const len = Math.min(chunk, vs - off);
        if (got && !Buffer.isBuffer(got)) {
          let j = 0;
          let at = 0;
          for (let o = 0; o < len; o += outBlock) {
            let piece: Buffer | null = null;
            if (j < got.at.length && got.at[j] === o) {
              piece = got.data.subarray(at, at + got.sizes[j]!);
              at += got.sizes[j]!;
              j++;
            }
            bytesWritten += piece ? piece.length : 0;
            yield { index: (off + o) / outBlock, data: piece };
          }
        } else {
          for (let o = 0; o < len; o += outBlock) {
            const index = (off + o) / outBlock;
            const piece = got ? got.subarray(o, Math.min(len, o + outBlock)) : null;
            bytesWritten += piece ? piece.length : 0;
            yield { index, data: piece };
          }
        }
        opts.progress?.({ bytesDone: Math.min(vs, off + len), bytesTotal: vs });
        if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'restore cancelled', {});
      }
    },
  };
  try {
    await writeDisk(format, source, opts.out, { overwrite: opts.force === true, confine: opts.confine });
  } finally {
    pdr.close();
  }
  return { source: m.source, point: m.id, disk: diskIndex, out: opts.out, format, virtualSize: vs, bytesWritten, durationMs: Date.now() - t0 };
}
