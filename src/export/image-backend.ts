/**
 * A read-only NBD backend over any DiskImage (a recovery point, a VHDX, a raw file): reads go to the
 * image, `base:allocation` comes from its extents (loaded once: images served here do not change), with
 * 'zero' and 'unallocated' both reported as holes that read as zero.
 */
import type { DiskImage, Extent } from '../formats/types.js';
import type { BackendExtent, NbdBackend } from '../nbd/backend.js';

export class ImageBackend implements NbdBackend {
  readonly writable = false;
  readonly size: number;
  #image: DiskImage;
  #extents: Promise<Extent[]> | null = null;

  constructor(image: DiskImage) {
    this.#image = image;
    this.size = image.info.virtualSize;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.#image.read(offset, length);
  }

  readDone(data: Buffer): void {
    this.#image.release?.(data);
  }

  async status(offset: number, length: number, maxExtents: number): Promise<BackendExtent[]> {
    this.#extents ??= this.#image.extents();
    const extents = await this.#extents;
    // Last extent starting at or before `offset`.
    let lo = 0;
    let hi = extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (extents[mid]!.offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    const out: BackendExtent[] = [];
    const end = offset + length;
    let at = offset;
    for (let i = lo; i < extents.length && at < end; i++) {
      const e = extents[i]!;
      const stop = Math.min(end, e.offset + e.length);
      if (stop <= at) continue;
      const hole = e.kind !== 'data';
      const last = out[out.length - 1];
      if (last && last.hole === hole) out[out.length - 1] = { length: last.length + (stop - at), hole, zero: hole };
      else if (out.length >= maxExtents) break;
      else out.push({ length: stop - at, hole, zero: hole });
      at = stop;
    }
    return out;
  }

  write(): Promise<void> {
    return Promise.reject(new Error('read-only backend'));
  }

  writeZeroes(): Promise<void> {
    return Promise.reject(new Error('read-only backend'));
  }

  trim(): Promise<void> {
    return Promise.reject(new Error('read-only backend'));
  }

  async flush(): Promise<void> {}
}
