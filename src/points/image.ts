/**
 * A recovery point's disk opened as a read-only DiskImage (src/formats/types.ts), straight over the store:
 * nothing is restored first. What the file-system readers, `files` commands and NBD exports read through.
 *
 * Reads decode only the blocks they touch. The point's inner index pages are read at open (33 pages for 2 TiB
 * at 64 KiB blocks); a leaf page (1,024 block digests, 64 MiB of disk) is read when a read first touches its
 * range. Small reads (below BULK_BYTES, 128 KiB: directory walks, MFT records, inode tables) decode block by block on this
 * thread through a byte-bounded LRU cache of decoded blocks and pages (cache.ts; shared by every image of the
 * process unless one is given); larger reads (file contents, NBD requests) go to the worker pool 8 MiB at a time,
 * several in flight, and bypass the block cache. All-zero blocks are never read: they are 'zero' extents.
 *
 * The point is held (storage/holds.ts) from open to close unless `hold: false`, so prune keeps it and gc keeps
 * its blocks; if gc repacks a block meanwhile, the read looks it up in a fresh index once (PointDiskReader).
 */
import { SvError } from '../errors/index.js';
import { checkReadRange, ExtentBuilder } from '../formats/common.js';
import type { DiskImage, DiskInfo, Extent } from '../formats/types.js';
import { PointDiskReader } from '../sync/point-reader.js';
import { openStore } from '../sync/open-store.js';
import { takeHold, type Hold } from '../../storage/holds.js';
import { isZeroDigest } from '../../storage/codec.js';
import { DIGEST_SIZE } from '../../storage/layout.js';
import type { DiskRecord, PointManifest } from '../../storage/manifest.js';
import type { Store } from '../../storage/store.js';
import { BlobCache, sharedBlobCache } from './cache.js';
import { ReadWindows } from './windows.js';

/**
 * Reads of at least this many bytes go to the worker pool (and bypass the block cache). 128 KiB: an NBD
 * client's sequential requests (nbdcopy sends 256 KiB) then decode on the workers, in parallel, while this
 * thread only serves the protocol; file-system metadata reads (64 KiB MFT chunks, 4 KiB directory blocks) stay
 * here, cached. Measured (docs/BENCHMARKS.md, export section): nbdcopy of a 1 GiB point cost the server 3.2
 * CPU-s with 1 MiB here (every request decoded on the main thread).
 */
export const BULK_BYTES = 128 * 1024;
const BULK_CHUNK = 8 * 1024 * 1024;
/** A read without a target buffer up to this size is one worker task whose output is returned as is. */
const SINGLE_TASK_BYTES = 16 * 1024 * 1024;
const BULK_IN_FLIGHT = 4;

export interface OpenPointImageOptions {
  /** Store folder or an opened Store. */
  readonly store: string | Store;
  readonly source: string;
  /** Point id, unique id prefix, "latest" or undefined (the newest). */
  readonly point?: string;
  /** Disk index in the point (default 0). */
  readonly disk?: number;
  /** Cache of decoded blocks and pages (default: the process-wide one, 64 MiB). */
  readonly cache?: BlobCache;
  /** What the hold says holds the point (default "browse"); false: take no hold (the caller holds it). */
  readonly hold?: false | { readonly operation: string; readonly ttlMs?: number };
  /**
   * Serve mid-size reads from shared read windows (see ReadWindows): for read-only NBD exports. Reads may
   * then return views of a buffer other reads share: callers must not modify what `read` returns.
   */
  readonly readWindows?: boolean;
  /**
   * Reads below this many bytes decode on this thread (default BULK_BYTES). A short-lived CLI process sets it
   * higher (files-common.ts): a 1 MiB file then costs no worker thread start (~0.1 CPU-s, more than its decode).
   */
  readonly inlineBytes?: number;
}

export class PointImage implements DiskImage {
  readonly info: DiskInfo;
  readonly manifest: PointManifest;
  readonly disk: DiskRecord;
  readonly #reader: PointDiskReader;
  readonly #cache: BlobCache;
  readonly #hold: Hold | undefined;
  readonly #windows: ReadWindows | undefined;
  readonly #bulkBytes: number;
  #closed = false;

  constructor(store: Store, manifest: PointManifest, disk: DiskRecord, reader: PointDiskReader, cache: BlobCache, hold: Hold | undefined, windows = false, inlineBytes = BULK_BYTES) {
    this.manifest = manifest;
    this.#bulkBytes = Math.max(BULK_BYTES, inlineBytes);
    this.#windows = windows ? new ReadWindows((at, len, into) => reader.readChunk(at, len, undefined, into), disk.virtualSize, manifest.blockSize) : undefined;
    this.disk = disk;
    this.#reader = reader;
    this.#cache = cache;
    this.#hold = hold;
    this.info = {
      path: `${store.dir}#${manifest.source}@${manifest.id}/${disk.index}`,
      format: 'raw',
      variant: 'dynamic',
      virtualSize: disk.virtualSize,
      logicalSectorSize: 512,
      physicalSectorSize: 512,
      blockSize: manifest.blockSize,
      extra: { store: store.dir, source: manifest.source, point: manifest.id, disk: disk.index, sourceName: disk.name, sourceFormat: disk.format },
    };
  }

  get hold(): Hold | undefined { return this.#hold; }

  async extents(): Promise<Extent[]> {
    this.#check();
    const { blockSize: bs, fanout, levelCounts } = this.#reader.shape;
    const size = this.disk.virtualSize;
    const out = new ExtentBuilder();
    for (let leaf = 0; leaf < levelCounts[0]!; leaf++) {
      const start = leaf * fanout * bs;
      const page = await this.#reader.leafPage(leaf);
      if (!page) {
        out.push(start, Math.min(size, start + fanout * bs) - start, 'zero');
        continue;
      }
      for (let slot = 0; slot < page.length / DIGEST_SIZE; slot++) {
        const off = start + slot * bs;
        out.push(off, Math.min(size, off + bs) - off, isZeroDigest(page, slot * DIGEST_SIZE) ? 'zero' : 'data');
      }
    }
    return out.done();
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    this.#check();
    checkReadRange(this.info.path, this.disk.virtualSize, offset, length, target);
    const bulk = this.#bulkBytes;
    if (!target && length >= bulk && this.#windows?.covers(offset, length)) return this.#windows.read(offset, length);
    if (!target && length >= bulk && length <= SINGLE_TASK_BYTES) return this.#readSingle(offset, length);
    const out = target ? target.subarray(0, length) : Buffer.allocUnsafe(length);
    if (length === 0) return out;
    if (length >= bulk) await this.#readBulk(offset, length, out);
    else await this.#readSmall(offset, length, out);
    return out;
  }

  /**
   * A buffer `read` returned is no longer used (an NBD reply carrying it is written): with read windows, its
   * window's memory may then be decoded into again. Only for buffers of this image's reads, once each.
   */
  release(data: Buffer): void {
    this.#windows?.release(data);
  }

  /** Block by block on this thread, through the cache. */
  async #readSmall(offset: number, length: number, out: Buffer): Promise<void> {
    const bs = this.#reader.shape.blockSize;
    const end = offset + length;
    for (let b = Math.floor(offset / bs); b * bs < end; b++) {
      const bStart = b * bs;
      const from = Math.max(offset, bStart);
      const to = Math.min(end, bStart + bs);
      const digest = await this.#reader.blockDigest(b);
      if (!digest) {
        out.fill(0, from - offset, to - offset);
        continue;
      }
      const key = digest.toString('hex');
      let block = this.#cache.get(key);
      if (!block) {
        block = await this.#reader.readBlob(digest);
        const expected = Math.min(bs, this.disk.virtualSize - bStart);
        if (block.length !== expected) {
          throw new SvError('SV_ERR_STORE_CORRUPT_INDEX', `${this.info.path}: block ${b} (${key}) decodes to ${block.length} bytes, expected ${expected}`, { digest: key, block: b, expected, found: block.length });
        }
        this.#cache.set(key, block);
      }
      block.copy(out, from - offset, from - bStart, to - bStart);
    }
  }

  /**
   * One worker task for the aligned blocks around the range, returned as a view of the worker's buffer: no copy
   * (on VMs whose fresh pages are expensive to fault in, an 8 MiB copy into a new buffer costs more than the
   * decode). Callers wanting more than one task in flight issue several reads (files/read-ahead.ts does).
   */
  async #readSingle(offset: number, length: number): Promise<Buffer> {
    const bs = this.#reader.shape.blockSize;
    const alignedStart = Math.floor(offset / bs) * bs;
    const alignedEnd = Math.min(this.disk.virtualSize, Math.ceil((offset + length) / bs) * bs);
    const data = await this.#reader.readChunk(alignedStart, alignedEnd - alignedStart);
    if (!data) return Buffer.alloc(length);
    return data.subarray(offset - alignedStart, offset - alignedStart + length);
  }

  /** Through the worker pool, BULK_CHUNK of aligned disk at a time, a few in flight. */
  async #readBulk(offset: number, length: number, out: Buffer): Promise<void> {
    const bs = this.#reader.shape.blockSize;
    const size = this.disk.virtualSize;
    const alignedStart = Math.floor(offset / bs) * bs;
    const alignedEnd = Math.min(size, Math.ceil((offset + length) / bs) * bs);
    const chunk = Math.max(BULK_CHUNK, bs);
    const starts: number[] = [];
    for (let at = alignedStart; at < alignedEnd; at += chunk) starts.push(at);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < starts.length) {
        const at = starts[next++]!;
        const len = Math.min(chunk, alignedEnd - at);
        const data = await this.#reader.readChunk(at, len);
        const from = Math.max(offset, at);
        const to = Math.min(offset + length, at + len);
        if (data) data.copy(out, from - offset, from - at, to - at);
        else out.fill(0, from - offset, to - offset);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BULK_IN_FLIGHT, starts.length) }, worker));
  }

  #check(): void {
    if (this.#closed) throw new SvError('SV_ERR_FORMAT_READ_RANGE', `${this.info.path}: read after close`, { path: this.info.path });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.close();
    await this.#hold?.release();
  }
}

/**
 * Open disk `disk` of `source@point` as a DiskImage, holding the point until close(). Errors:
 * SV_ERR_STORE_POINT_NOT_FOUND, SV_ERR_SYNC_DISK_NOT_FOUND, store damage codes.
 */
export async function openPointImage(opts: OpenPointImageOptions): Promise<PointImage> {
  const store = await openStore(opts.store);
  const resolved = await store.resolvePoint(opts.source, opts.point);
  const diskIndex = opts.disk ?? 0;
  const disk = resolved.disks[diskIndex];
  if (!disk) {
    throw new SvError('SV_ERR_SYNC_DISK_NOT_FOUND', `point ${resolved.source}@${resolved.id} has ${resolved.disks.length} disk(s) (0..${resolved.disks.length - 1}), not disk ${diskIndex}`, { point: resolved.id, disk: diskIndex });
  }
  const hold = opts.hold === false ? undefined : await takeHold(store, resolved.source, resolved.id, { operation: opts.hold?.operation ?? 'browse', ttlMs: opts.hold?.ttlMs });
  const cache = opts.cache ?? sharedBlobCache();
  const reader = new PointDiskReader(store.ref, await store.loadIndex(), resolved, disk, () => store.loadIndex(), cache);
  try {
    await reader.open();
  } catch (err) {
    reader.close();
    await hold?.release();
    throw err;
  }
  return new PointImage(store, resolved, disk, reader, cache, hold, opts.readWindows === true, opts.inlineBytes);
}
