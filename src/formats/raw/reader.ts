/**
 * Raw images: the file is the virtual disk, byte for byte (any file; its size is the virtual size).
 *
 * Extents: Node has no lseek(SEEK_DATA/SEEK_HOLE), so a raw file reports itself as one data extent, except a
 * file with no allocated blocks at all (st_blocks == 0, e.g. fresh `truncate -s`), which is all 'zero'.
 * Read-only; nothing is locked.
 */
import { checkReadRange } from '../common.js';
import type { ImageFile } from '../file.js';
import type { DiskImage, DiskInfo, Extent } from '../types.js';

export const RAW_BLOCK_SIZE = 1 << 20;

export async function openRaw(file: ImageFile): Promise<DiskImage> {
  return new RawImage(file);
}

class RawImage implements DiskImage {
  readonly info: DiskInfo;
  readonly #file: ImageFile;

  constructor(file: ImageFile) {
    this.#file = file;
    this.info = {
      path: file.path,
      format: 'raw',
      variant: 'fixed',
      virtualSize: file.size,
      logicalSectorSize: 512,
      physicalSectorSize: 512,
      blockSize: RAW_BLOCK_SIZE,
      extra: {},
    };
  }

  async extents(): Promise<Extent[]> {
    const size = this.#file.size;
    if (size === 0) return [];
    const allocated = await this.#file.allocatedBytes();
    return [{ offset: 0, length: size, kind: allocated === 0 ? 'zero' : 'data' }];
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    checkReadRange(this.#file.path, this.#file.size, offset, length, target);
    return this.#file.readAt(offset, length, 'raw data', target);
  }

  async close(): Promise<void> {
    await this.#file.close();
  }
}
