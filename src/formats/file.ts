/**
 * An fd-based positional reader with bounds checks, shared by every format reader.
 *
 * Invariants: the path is checked with stat(2) BEFORE it is opened (device.ts: a regular file or a block device,
 * nothing that could block or misreport its size, e.g. a FIFO), then opened read-only with O_NONBLOCK (which
 * cannot block even if the path was swapped for a FIFO meanwhile; reads of files and devices ignore it) and
 * checked to be the same file. A source image is never modified. Its size is taken once at open (a block
 * device's from /sys/dev/block; images are not expected to change while read); every structure read names what it reads so that a
 * short file yields SV_ERR_FORMAT_TRUNCATED naming the file, the structure, the offset and the sizes.
 * Reads go straight into the caller's buffer (no copy), and loop on short reads.
 */
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { SvError, wrapSystemError } from '../errors/index.js';
import { assertOpenedInside } from '../util/confined.js';
import { blockDeviceSize, checkDiskPath, checkSameFile } from './device.js';

export class ImageFile {
  readonly path: string;
  readonly size: number;
  /** A block device (its stat reports neither size nor allocation; the device is read as a whole). */
  readonly isBlockDevice: boolean;
  #fh: FileHandle | undefined;

  private constructor(path: string, fh: FileHandle, size: number, isBlockDevice: boolean) {
    this.path = path;
    this.#fh = fh;
    this.size = size;
    this.isBlockDevice = isBlockDevice;
  }

  /** Open `path` read-only; with `roots`, the opened file must lie under them (util/confined.ts assertOpenedInside). */
  static async open(path: string, roots?: readonly string[]): Promise<ImageFile> {
    const before = await stat(path).catch((err: unknown) => { throw wrapSystemError(err, `stat ${path}`); });
    await checkDiskPath(path, before);
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw wrapSystemError(err, `open ${path}`);
    }
    try {
      if (roots) assertOpenedInside(fh.fd, path, roots);
      const st = await fh.stat();
      checkSameFile(path, before, st);
      const device = st.isBlockDevice();
      return new ImageFile(path, fh, device ? await blockDeviceSize(path, st, fh) : st.size, device);
    } catch (err) {
      await fh.close();
      throw wrapSystemError(err, `stat ${path}`);
    }
  }

  /**
   * Allocated bytes on disk (st_blocks * 512): a cheap hint that a raw file is fully sparse. A block device
   * reports no allocation (st_blocks 0): its whole size is counted.
   */
  async allocatedBytes(): Promise<number> {
    if (this.isBlockDevice) return this.size;
    const st = await this.#handle().stat();
    return st.blocks * 512;
  }

  #handle(): FileHandle {
    if (!this.#fh) throw new SvError('SV_ERR_FORMAT_CLOSED', `${this.path}: image file used after close`, { path: this.path });
    return this.#fh;
  }

  /**
   * Read exactly `length` bytes at `position` into `target[targetOffset..]` (or a new buffer). `what` names the
   * structure for the error when the file is too short.
   */
  async readAt(position: number, length: number, what: string, target?: Buffer, targetOffset = 0): Promise<Buffer> {
    if (!Number.isSafeInteger(position) || position < 0 || length < 0 || position + length > this.size) {
      throw new SvError(
        'SV_ERR_FORMAT_TRUNCATED',
        `${this.path}: ${what} at offset ${position} (${length} bytes) lies past the end of the file (size ${this.size})`,
        { path: this.path, structure: what, offset: position, length, fileSize: this.size },
      );
    }
    const buf = target ?? Buffer.allocUnsafe(length);
    const fh = this.#handle();
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        ({ bytesRead: n } = await fh.read(buf, targetOffset + done, length - done, position + done));
      } catch (err) {
        throw wrapSystemError(err, `read ${this.path} ${what} at ${position + done}`);
      }
      if (n === 0) {
        throw new SvError('SV_ERR_FORMAT_TRUNCATED', `${this.path}: ${what} at offset ${position}: file shrank while reading`, {
          path: this.path, structure: what, offset: position + done,
        });
      }
      done += n;
    }
    return buf;
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) await fh.close();
  }
}
