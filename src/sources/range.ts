/** The range rule every DiskSource.backupRange enforces (types.ts contract), in one place. */
import { SvError } from '../errors/index.js';
import type { RangeRequest } from './types.js';

/** Throws SV_ERR_SOURCE_BAD_RANGE unless `req` is a block-aligned, non-empty range inside a disk of `size` bytes. */
export function checkRange(req: RangeRequest, size: number, what: string): void {
  const { offset, length, blockSize } = req;
  const bad = (why: string): never => {
    throw new SvError('SV_ERR_SOURCE_BAD_RANGE', `${what}: range [${offset}, +${length}) with ${blockSize}-byte blocks ${why} (disk size ${size})`, {
      source: what, offset, length, blockSize, virtualSize: size,
    });
  };
  if (!Number.isSafeInteger(blockSize) || blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) bad('has an invalid block size');
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) bad('needs a non-negative offset and a positive length');
  if (offset + length > size) bad('reaches past the end of the disk');
  if (offset % blockSize !== 0) bad('does not start on a block boundary');
  if (length % blockSize !== 0 && offset + length !== size) bad('does not end on a block boundary or at the end of the disk');
  const count = Math.ceil(length / blockSize);
  if (req.oldDigests && req.oldDigests.byteLength !== count * 32) bad(`has ${req.oldDigests.byteLength / 32} old digests for ${count} blocks`);
}
