/**
 * A file of a recovery point's file system as ordered chunks, several reads in flight (each large read of a
 * point image goes to the worker pool, so a few at once keep the workers busy while the caller writes).
 */
import { SvError } from '../errors/index.js';
import type { FileHandle } from '../volumes/fs/types.js';

export const READ_CHUNK = 8 * 1024 * 1024;
export const READ_DEPTH = 4;

export async function* readAhead(h: FileHandle, path: string, chunk = READ_CHUNK, depth = READ_DEPTH): AsyncGenerator<Buffer> {
  const queue: Array<{ at: number; len: number; p: Promise<Buffer> }> = [];
  let next = 0;
  try {
    while (next < h.size || queue.length) {
      while (queue.length < depth && next < h.size) {
        const len = Math.min(chunk, h.size - next);
        const p = h.read(next, len);
        p.catch(() => undefined);
        queue.push({ at: next, len, p });
        next += len;
      }
      const { at, len, p } = queue.shift()!;
      const buf = await p;
      if (buf.length !== len) {
        throw new SvError('SV_ERR_CORE_INTERNAL', `${path}: the file-system reader returned ${buf.length} bytes at ${at}, expected ${len}`, { path, offset: at, expected: len, found: buf.length });
      }
      yield buf;
    }
  } finally {
    await Promise.allSettled(queue.map((q) => q.p));
  }
}
