/**
 * A small LRU cache of metadata blocks read from a volume (inode tables, directory blocks, extent-tree nodes,
 * FAT sectors), shared by every reader of one mounted file system so directory walks do not re-read the same
 * blocks. Bounded by `capacity` blocks; concurrent reads of the same block share one volume read. File data is
 * not cached here (it is read straight from the volume, in as few calls as its runs allow).
 */
import type { VolumeReader } from './types.js';

export class BlockCache {
  readonly #volume: VolumeReader;
  readonly #blockSize: number;
  readonly #capacity: number;
  readonly #blocks = new Map<number, Promise<Buffer>>();
  /** Volume reads made through this cache (tests check that lookups touch few blocks). */
  reads = 0;

  constructor(volume: VolumeReader, blockSize: number, capacity = 512) {
    this.#volume = volume;
    this.#blockSize = blockSize;
    this.#capacity = capacity;
  }

  get blockSize(): number {
    return this.#blockSize;
  }

  /**
   * The block `n` (callers check `n` is inside the file system first); the last block of a volume whose size is
   * not a multiple of the block size is returned short. The buffer is shared: do not modify it.
   */
  read(n: number): Promise<Buffer> {
    const hit = this.#blocks.get(n);
    if (hit) {
      this.#blocks.delete(n);
      this.#blocks.set(n, hit);
      return hit;
    }
    this.reads++;
    const at = n * this.#blockSize;
    const p = this.#volume.read(at, Math.max(0, Math.min(this.#blockSize, this.#volume.size - at)));
    this.#blocks.set(n, p);
    p.catch(() => this.#blocks.delete(n));
    if (this.#blocks.size > this.#capacity) {
      const oldest = this.#blocks.keys().next().value;
      if (oldest !== undefined) this.#blocks.delete(oldest);
    }
    return p;
  }
}
