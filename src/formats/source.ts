/**
 * Block sources: an open DiskImage as an ordered BlockSource (for convert and restore), and `checkedBlocks`,
 * which wraps any source and enforces the BlockSource contract for writers (increasing indexes, exact sizes).
 */
import { SvError } from '../errors/index.js';
import type { BlockSource, DiskImage } from './types.js';

/**
 * Blocks of `image` in order; blocks whose whole range is 'zero' or 'unallocated' in the image's extents are
 * yielded as null without reading. Each yielded buffer is fresh (writers may keep it). Reads run `readAhead`
 * blocks ahead of the consumer, so reading overlaps the writer's work.
 */
export function imageBlockSource(image: DiskImage, blockSize = 2 << 20, readAhead = 2): BlockSource {
  const virtualSize = image.info.virtualSize;
  return {
    virtualSize,
    blockSize,
    async *blocks() {
      const extents = await image.extents();
      let e = 0;
      const count = Math.ceil(virtualSize / blockSize);
      const hasData = (index: number): boolean => {
        const start = index * blockSize;
        const end = Math.min(virtualSize, start + blockSize);
        while (e < extents.length && extents[e]!.offset + extents[e]!.length <= start) e++;
        for (let k = e; k < extents.length && extents[k]!.offset < end; k++) if (extents[k]!.kind === 'data') return true;
        return false;
      };
      const pending: Array<{ index: number; data: Promise<Buffer | null> }> = [];
      let next = 0;
      const fill = () => {
        while (next < count && pending.length <= readAhead) {
          const index = next++;
          const start = index * blockSize;
          const data = hasData(index) ? image.read(start, Math.min(blockSize, virtualSize - start)) : Promise.resolve(null);
          data.catch(() => undefined); // surfaced when awaited below; avoids an unhandled rejection meanwhile
          pending.push({ index, data });
        }
      };
      fill();
      while (pending.length > 0) {
        const head = pending.shift()!;
        const data = await head.data;
        fill();
        yield { index: head.index, data };
      }
    },
  };
}

/** Number of blocks of a source (the last may be short). */
export function blockCount(source: BlockSource): number {
  return Math.ceil(source.virtualSize / source.blockSize);
}

/** The source's blocks, checked: indexes strictly increasing and in range, data exactly the block's size. */
export async function* checkedBlocks(source: BlockSource, outPath: string): AsyncGenerator<{ index: number; data: Buffer | null }> {
  const count = blockCount(source);
  let last = -1;
  for await (const block of source.blocks()) {
    const { index, data } = block;
    const expected = Math.min(source.blockSize, source.virtualSize - index * source.blockSize);
    if (!Number.isInteger(index) || index <= last || index >= count || (data !== null && data.length !== expected)) {
      throw new SvError('SV_ERR_FORMAT_BAD_SOURCE', `${outPath}: block source gave block ${index} (${data === null ? 'null' : `${data.length} bytes`}) after block ${last}; expected increasing indexes below ${count} of ${expected} bytes`, {
        path: outPath, index, previous: last, count, expected, found: data === null ? null : data.length,
      });
    }
    last = index;
    yield block;
  }
}

/**
 * The same content in blocks of `blockSize` (a writer's own block size): source blocks are split or joined;
 * a target block is yielded only when some part of it is non-null (missing indexes mean zero/unallocated);
 * its null parts are zero, or what `fillNull` puts there.
 * Passes blocks through untouched when the sizes already match.
 */
export async function* rechunk(
  source: BlockSource,
  blockSize: number,
  outPath: string,
  /** What null source blocks inside a partly written target block hold (default zero; a differencing writer gives the parent's bytes). */
  fillNull?: (offset: number, into: Buffer) => Promise<void>,
): AsyncGenerator<{ index: number; data: Buffer | null }> {
  if (source.blockSize === blockSize) {
    yield* checkedBlocks(source, outPath);
    return;
  }
  const size = source.virtualSize;
  const lenOf = (t: number) => Math.min(blockSize, size - t * blockSize);
  let cur = -1;
  let buf: Buffer | null = null;
  for await (const { index, data } of checkedBlocks(source, outPath)) {
    const start = index * source.blockSize;
    const end = start + Math.min(source.blockSize, size - start);
    for (let t = Math.floor(start / blockSize); t * blockSize < end; t++) {
      if (t !== cur) {
        if (buf) yield { index: cur, data: buf };
        cur = t;
        buf = null;
      }
      if (data === null) continue;
      const tStart = t * blockSize;
      const s = Math.max(start, tStart);
      const e = Math.min(end, tStart + blockSize);
      if (!buf) {
        buf = Buffer.alloc(lenOf(t));
        if (fillNull) await fillNull(tStart, buf);
      }
      data.copy(buf, s - tStart, s - start, e - start);
    }
  }
  if (buf) yield { index: cur, data: buf };
}
