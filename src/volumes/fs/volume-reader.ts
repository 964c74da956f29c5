/** A partition of a DiskImage as a VolumeReader (types.ts): reads are offset by the partition's start and kept inside it. */
import { SvError } from '../../errors/index.js';
import type { DiskImage } from '../../formats/types.js';
import type { Volume } from '../partitions/types.js';
import type { VolumeReader } from './types.js';

export function volumeReader(disk: DiskImage, volume: Pick<Volume, 'offset' | 'size' | 'index'>): VolumeReader {
  const size = Math.max(0, Math.min(volume.size, disk.info.virtualSize - volume.offset));
  return {
    size,
    read(offset: number, length: number): Promise<Buffer> {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        return Promise.reject(new SvError('SV_ERR_FORMAT_READ_RANGE', `${disk.info.path} volume ${volume.index}: read of ${length} bytes at ${offset} is outside the volume (size ${size})`, {
          path: disk.info.path, volume: volume.index, offset, length, size,
        }));
      }
      return disk.read(volume.offset + offset, length);
    },
  };
}
