/**
 * `parentDiffSource(source, parent)`: the blocks of a full-content source as a differencing child of `parent`
 * must be given to a writer. In a plain BlockSource, null (or a missing index) means "all zero"; for the
 * differencing writers null means "inherit the parent". This adapter turns one into the other by comparing with
 * the parent, sector by sector:
 *   - content equal to the parent's                → null (the child stores nothing);
 *   - content differing in some sectors            → the content, with `ranges` = the differing sectors (the
 *     VHDX writer stores only those, as a PARTIALLY_PRESENT block; the VHD writer ignores `ranges` and compares
 *     with the parent itself);
 *   - zero (null) content where the parent has data → a zero buffer, so that the child hides the parent's data.
 * Without this, converting an image that is zero where its parent is not gave a child whose merged view showed
 * the parent's bytes (regression test: test/sync/formats-roundtrip.test.ts, "differencing over a parent with data").
 */
import { isZero } from './common.js';
import type { BlockSource, DiskImage } from './types.js';

export interface DiffBlock {
  readonly index: number;
  readonly data: Buffer | null;
  readonly ranges?: readonly { readonly offset: number; readonly length: number }[];
}

export interface DiffBlockSource extends BlockSource {
  blocks(): AsyncIterable<DiffBlock>;
}

/** Byte ranges (multiples of `sector`) where `a` and `b` differ, merged. */
export function differingSectors(a: Buffer, b: Buffer, sector: number): Array<{ offset: number; length: number }> {
  const out: Array<{ offset: number; length: number }> = [];
  for (let o = 0; o < a.length; o += sector) {
    const e = Math.min(a.length, o + sector);
    if (a.compare(b, o, e, o, e) === 0) continue;
    const last = out[out.length - 1];
    if (last && last.offset + last.length === o) last.length += e - o;
    else out.push({ offset: o, length: e - o });
  }
  return out;
}

export function parentDiffSource(source: BlockSource, parent: DiskImage, sector = 512): DiffBlockSource {
  const { virtualSize, blockSize } = source;
  return {
    virtualSize,
    blockSize,
    async *blocks() {
      const count = Math.ceil(virtualSize / blockSize);
      const extents = await parent.extents();
      let e = 0;
      /** Does the parent have a 'data' extent in [start, end)? (Calls come in increasing order.) */
      const parentHasData = (start: number, end: number): boolean => {
        while (e < extents.length && extents[e]!.offset + extents[e]!.length <= start) e++;
        for (let k = e; k < extents.length && extents[k]!.offset < end; k++) if (extents[k]!.kind === 'data') return true;
        return false;
      };
      const diff = async (index: number, data: Buffer | null): Promise<DiffBlock> => {
        const start = index * blockSize;
        const len = Math.min(blockSize, virtualSize - start);
        const parentData = parentHasData(start, start + len);
        if (!parentData && (data === null || isZero(data))) return { index, data: null };
        const theirs = parentData ? await parent.read(start, len) : Buffer.alloc(len);
        const mine = data ?? Buffer.alloc(len);
        const ranges = differingSectors(mine, theirs, sector);
        if (!ranges.length) return { index, data: null };
        return ranges.length === 1 && ranges[0]!.length === len ? { index, data: mine } : { index, data: mine, ranges };
      };
      let next = 0;
      for await (const { index, data } of source.blocks()) {
        for (; next < index && next < count; next++) {
          const d = await diff(next, null);
          if (d.data) yield d;
        }
        next = index + 1;
        const d = await diff(index, data);
        yield d;
      }
      for (; next < count; next++) {
        const d = await diff(next, null);
        if (d.data) yield d;
      }
    },
  };
}
