/**
 * O_DIRECT output for the raw writer: a second descriptor on the writer's temp file, opened with O_DIRECT,
 * through which page-aligned writes go straight from the caller's buffers to the device.
 *
 * Why: a buffered write copies every byte into freshly allocated page-cache pages. On this appliance's VMs
 * (free page reporting on, see docs/BENCHMARKS.md "Restore in the suite (session 2)") memory freed a few
 * seconds earlier has been handed back to the host, and the first touch of each such page costs a host fault:
 * writing 2 GiB into new pages took 2.6-3.1 s of kernel time instead of 0.7 s. A restore allocates 2.5 GB of
 * output pages that way. O_DIRECT allocates none (and leaves the page cache to the data that was there).
 *
 * Contract: a write qualifies when its file position, its length and the address of every buffer are
 * multiples of DIO_ALIGN (4 KiB: a page, and a multiple of every logical block size in use). Everything else
 * (the unaligned tail of a disk, a misaligned source) goes through the ordinary descriptor. Where O_DIRECT is
 * refused (the open fails with EINVAL/EOPNOTSUPP, or a write fails with EINVAL) the writer falls back to
 * buffered writes for the rest of the file. Durability is unchanged: the caller fsyncs the file (which also
 * commits the block allocations the direct writes made) before renaming it.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { alignmentGap, allocAligned } from '../../native/index.js';

export const DIO_ALIGN = 4096;

/** Error codes meaning "this file system (or this request) does not do O_DIRECT": fall back to buffered. */
const REFUSED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUP']);

export function directRefused(err: unknown): boolean {
  return REFUSED.has(String((err as { code?: unknown } | null)?.code));
}

/** An O_DIRECT write-only handle on the existing file `path`, or undefined where O_DIRECT is refused. */
export async function openDirect(path: string): Promise<FileHandle | undefined> {
  if (typeof constants.O_DIRECT !== 'number') return undefined;
  try {
    return await open(path, constants.O_WRONLY | constants.O_DIRECT | constants.O_NOFOLLOW);
  } catch (err) {
    if (directRefused(err)) return undefined;
    throw err;
  }
}

/** Can `length` bytes at file `position` go through O_DIRECT (buffers aside)? */
export function directRange(position: number, length: number): boolean {
  return position % DIO_ALIGN === 0 && length % DIO_ALIGN === 0 && length > 0;
}

/** `data` itself when its memory is page-aligned, else an aligned copy (one memcpy, no page-cache copy). */
export function alignedData(data: Buffer): Buffer {
  if (alignmentGap(data, DIO_ALIGN) === 0) return data;
  const copy = allocAligned(data.length, DIO_ALIGN);
  data.copy(copy);
  return copy;
}
