/**
 * VolumeReaders for the file-system tests: a plain image file, a byte range of a DiskImage (a partition of a
 * VHD/VHDX), and a Buffer (fuzzing: mutate in memory, read back). Each refuses reads outside the volume with a
 * plain Error, so a reader that asks for bytes it should not (an unchecked on-disk number) fails the test.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { DiskImage } from '../../src/formats/types.js';
import type { VolumeReader } from '../../src/volumes/fs/types.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** Largest single read a reader may ask for in these tests (a whole 24 MiB file read at once is below it). */
export const MAX_TEST_READ = 64 << 20;

function check(size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size || length > MAX_TEST_READ) {
    throw new Error(`volume read out of range: ${offset}+${length} of ${size}`);
  }
}

export function fileVolume(t: Teardown, path: string): VolumeReader & { reads: number; bytes: number } {
  const fd = openSync(path, 'r');
  t.teardown(() => closeSync(fd));
  const size = fstatSync(fd).size;
  const vol = {
    size,
    reads: 0,
    bytes: 0,
    async read(offset: number, length: number): Promise<Buffer> {
      check(size, offset, length);
      vol.reads++;
      vol.bytes += length;
      const b = Buffer.alloc(length);
      readSync(fd, b, 0, length, offset);
      return b;
    },
  };
  return vol;
}

export function diskVolume(disk: DiskImage, start: number, size: number): VolumeReader {
  return {
    size,
    async read(offset: number, length: number): Promise<Buffer> {
      check(size, offset, length);
      return disk.read(start + offset, length);
    },
  };
}

export function bufferVolume(buf: Buffer): VolumeReader {
  return {
    size: buf.length,
    async read(offset: number, length: number): Promise<Buffer> {
      check(buf.length, offset, length);
      return Buffer.from(buf.subarray(offset, offset + length));
    },
  };
}
