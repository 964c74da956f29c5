/** Block range arithmetic for the coordinator: ranges are [start, end) block indices, sorted, merged. */
import { SvError } from '../errors/index.js';
import type { Extent } from '../formats/types.js';
import type { ChangedExtent } from './types.js';

export type Range = readonly [number, number];

export function mergeRanges(list: Range[]): Range[] {
  const sorted = list.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export function intersectRanges(x: readonly Range[], y: readonly Range[]): Range[] {
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const a = Math.max(x[i]![0], y[j]![0]);
    const b = Math.min(x[i]![1], y[j]![1]);
    if (b > a) out.push([a, b]);
    if (x[i]![1] < y[j]![1]) i++;
    else j++;
  }
  return out;
}

export function subtractRanges(x: readonly Range[], y: readonly Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const [a0, b] of x) {
    let a = a0;
    while (j < y.length && y[j]![1] <= a) j++;
    let k = j;
    while (a < b && k < y.length && y[k]![0] < b) {
      if (y[k]![0] > a) out.push([a, y[k]![0]]);
      a = Math.max(a, y[k]![1]);
      k++;
    }
    if (a < b) out.push([a, b]);
  }
  return out;
}

/** Blocks touched by byte extents (rounded outwards to blocks, clipped to the disk). */
export function blocksOfBytes(extents: ReadonlyArray<readonly [number, number]>, blockSize: number, blockCount: number): Range[] {
  return mergeRanges(extents.map(([off, len]) => [Math.floor(off / blockSize), Math.min(blockCount, Math.ceil((off + len) / blockSize))] as Range));
}

/** Blocks holding any byte of a 'data' extent. */
export function dataBlocks(extents: readonly Extent[], blockSize: number, blockCount: number): Range[] {
  return blocksOfBytes(extents.filter((e) => e.kind === 'data').map((e) => [e.offset, e.length] as const), blockSize, blockCount);
}

/** Check a change list from a caller or a --changed file: [[offset, length], ...] inside [0, virtualSize). */
export function checkChangeList(value: unknown, virtualSize: number, what: string): ChangedExtent[] {
  if (!Array.isArray(value)) throw new SvError('SV_ERR_SYNC_BAD_CHANGE_LIST', `${what}: expected a JSON array of [offset, length] pairs, found ${typeof value}`, { what });
  return value.map((pair: unknown, i) => {
    const ok = Array.isArray(pair) && pair.length === 2 && pair.every((n) => Number.isSafeInteger(n) && (n as number) >= 0);
    if (!ok) throw new SvError('SV_ERR_SYNC_BAD_CHANGE_LIST', `${what}: entry ${i} is ${JSON.stringify(pair)}, expected [offset, length] with non-negative integers`, { what, entry: i });
    const [off, len] = pair as [number, number];
    if (off + len > virtualSize) {
      throw new SvError('SV_ERR_SYNC_BAD_CHANGE_LIST', `${what}: entry ${i} [${off}, ${len}] ends at ${off + len}, beyond the disk's ${virtualSize} bytes`, { what, entry: i, virtualSize });
    }
    return [off, len] as const;
  });
}

export function rangeLength(list: readonly Range[]): number {
  return list.reduce((n, [a, b]) => n + (b - a), 0);
}
