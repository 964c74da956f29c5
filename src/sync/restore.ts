/**
 * restore(): any point, any disk, to a new image (vhdx/vhd/raw; default the source disk's format) through the
 * format writers (writeDisk: temp file + fsync + rename; an existing output is refused unless `force`).
 *
 * The point's tree is read on this thread (pages are small); blocks are read, decompressed and digest-checked
 * by worker tasks (storeReadBlobs) 8 MiB of disk at a time, several in flight, handed to the writer in order
 * as blocks of the store's block size (null for all-zero ones, which the writers leave sparse). Readers take no lock: everything a
 * published point names is immutable; when a pack vanished (a concurrent gc repacked it) the chunk is read again
 * once with a freshly loaded index.
 */
import { SvError } from '../errors/index.js';
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
import type { RestoreOptions, RestoreResult } from './types.js';

const CHUNK_BYTES = 8 * 1024 * 1024;
const OUT_BLOCK = 64 * 1024;

/** Reads a disk of a point as ordered chunks (used by restore and tests). */
export class PointDiskReader {
  readonly shape: TreeShape;
  readonly disk: DiskRecord;
  #reader: BlobReader;
  readonly #packsDir: string;
  readonly #reload: (() => Promise<BlobIndex>) | undefined;
  #levels: Buffer[] = [];
  #leafCache = new Map<number, Buffer>();

  /** `reload` gives a fresh index when a pack vanished under a read (a concurrent gc repacked it). */
  constructor(packsDir: string, index: BlobIndex, m: PointManifest, disk: DiskRecord, reload?: () => Promise<BlobIndex>) {
    this.#reload = reload;
    this.disk = disk;
    this.shape = treeShape(disk.virtualSize, m.blockSize, m.fanout);
    this.#reader = new BlobReader(packsDir, index, reload);
    this.#packsDir = packsDir;
  }

  async open(): Promise<void> {
    this.#levels = await loadLevels(this.#reader.readPage, this.shape, Buffer.from(this.disk.root, 'hex'));
  }

  async #leaf(leaf: number): Promise<Buffer> {
    let page = this.#leafCache.get(leaf);
    if (!page) {
      page = await readPage(this.#reader.readPage, this.shape, 0, leaf, this.#levels[0]!.subarray(leaf * 32, leaf * 32 + 32));
      if (this.#leafCache.size > 8) this.#leafCache.clear();
      this.#leafCache.set(leaf, page);
    }
    return page;
  }

  /** Bytes [offset, offset+length) (block aligned) of the disk, or null when all zero. */
  async readChunk(offset: number, length: number, signal?: AbortSignal): Promise<Buffer | null> {
    try {
      return await this.#readChunk(offset, length, signal);
    } catch (err) {
      if (!this.#reload || (err as { code?: string }).code !== 'SV_ERR_STORE_CORRUPT_PACK') throw err;
      this.#reader.close();
      this.#reader = new BlobReader(this.#packsDir, await this.#reload(), this.#reload);
      return this.#readChunk(offset, length, signal);
    }
  }

  async #readChunk(offset: number, length: number, signal?: AbortSignal): Promise<Buffer | null> {
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
      packIds[i] = loc.packId;
      offsets[i] = loc.offset;
      stored[i] = loc.storedLength;
      raw[i] = loc.rawLength;
      flags[i] = loc.flag;
    });
    const r = await runTask('storeReadBlobs', {
      packsDir: this.#packsDir, mode: 'read', digests: Buffer.concat(digests), packIds, offsets, storedLengths: stored, rawLengths: raw, flags,
      outOffsets: Uint32Array.from(outOffsets), outLength: length,
    }, { signal });
    return Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength);
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
  const pdr = new PointDiskReader(store.packsDir, await store.loadIndex(), m, disk, () => store.loadIndex());
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
      const queue: Array<Promise<Buffer | null>> = [];
      let next = 0;
      const limit = poolSize() * 3; // chunks read ahead: the workers keep decoding while the writer copies
      for (let c = 0; c < chunks; c++) {
        while (queue.length < limit && next < chunks) {
          const off = next * chunk;
          const p = pdr.readChunk(off, Math.min(chunk, vs - off), opts.signal);
          p.catch(() => undefined);
          queue.push(p);
          next++;
        }
        const data = await queue.shift()!;
        const off = c * chunk;
        const len = Math.min(chunk, vs - off);
        for (let o = 0; o < len; o += outBlock) {
          const index = (off + o) / outBlock;
          const piece = data ? data.subarray(o, Math.min(len, o + outBlock)) : null;
          bytesWritten += piece ? piece.length : 0;
          yield { index, data: piece };
        }
        opts.progress?.({ bytesDone: Math.min(vs, off + len), bytesTotal: vs });
        if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'restore cancelled', {});
      }
    },
  };
  try {
    await writeDisk(format, source, opts.out, { overwrite: opts.force === true });
  } finally {
    pdr.close();
  }
  return { source: m.source, point: m.id, disk: diskIndex, out: opts.out, format, virtualSize: vs, bytesWritten, durationMs: Date.now() - t0 };
}
