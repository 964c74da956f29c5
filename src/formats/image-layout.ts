/**
 * A disk image file described as a sequence of byte segments, computed before any block is read: what the
 * streamed downloads (src/sync/image-stream.ts) send. The layout of a sparse image (VHD, VHDX) follows from
 * which of its blocks hold data, so its exact length, headers and BAT are known up front, and any byte range of
 * the file maps to segments without reading the disk.
 *
 * Segment kinds: `bytes` (literal bytes: headers, BAT, footers), `zero` (zeros: gaps, padding), `disk` (bytes
 * [offset, offset + length) of the virtual disk; zero past its end). A layout is a head (a list), an optional
 * region of stored blocks (one fixed-size stride per stored block, in the order of `blocks`), and a tail.
 *
 * Invariants: segments are contiguous and in file order, their lengths sum to `length`; `segments(start, end)`
 * yields only the parts inside [start, end), lazily (a 2 TiB disk's million blocks are never listed at once).
 */

export type Segment =
  | { readonly kind: 'bytes'; readonly at: number; readonly data: Buffer }
  | { readonly kind: 'zero'; readonly at: number; readonly length: number }
  | { readonly kind: 'disk'; readonly at: number; readonly offset: number; readonly length: number };

export interface ImageLayout {
  /** Bytes of the whole file. */
  readonly length: number;
  /** The segments covering [start, end) of the file, in order, clipped to it. */
  segments(start: number, end: number): Iterable<Segment>;
}

/** Stored blocks laid out back to back from `at`, `stride` bytes each. */
export interface BlockRegion {
  readonly at: number;
  readonly stride: number;
  /** The format block index of each stored block, ascending. */
  readonly blocks: Uint32Array;
  /** The segments of one stored block, with `at` relative to the block's start; their lengths sum to `stride`. */
  parts(block: number): readonly Segment[];
}

export function segmentLength(s: Segment): number {
  return s.kind === 'bytes' ? s.data.length : s.length;
}

/** `s` moved by `delta` and clipped to [start, end), or undefined when it lies outside. */
function clip(s: Segment, delta: number, start: number, end: number): Segment | undefined {
  const at = s.at + delta;
  const from = Math.max(at, start);
  const to = Math.min(at + segmentLength(s), end);
  if (from >= to) return undefined;
  const skip = from - at;
  if (s.kind === 'bytes') return { kind: 'bytes', at: from, data: s.data.subarray(skip, skip + to - from) };
  if (s.kind === 'zero') return { kind: 'zero', at: from, length: to - from };
  return { kind: 'disk', at: from, offset: s.offset + skip, length: to - from };
}

/** Builds the head or tail of a layout: segments placed at increasing offsets, gaps filled with zeros. */
export class SegmentList {
  readonly items: Segment[] = [];
  #end: number;

  constructor(start = 0) {
    this.#end = start;
  }

  get end(): number {
    return this.#end;
  }

  /** Zeros up to `at` (not before the current end), then `data` there. */
  bytes(at: number, data: Buffer): this {
    this.zeroTo(at);
    if (data.length > 0) this.items.push({ kind: 'bytes', at, data });
    this.#end = at + data.length;
    return this;
  }

  zeroTo(at: number): this {
    if (at < this.#end) throw new Error(`segment at ${at} overlaps the previous one (ending at ${this.#end})`);
    if (at > this.#end) this.items.push({ kind: 'zero', at: this.#end, length: at - this.#end });
    this.#end = at;
    return this;
  }

  disk(offset: number, length: number): this {
    if (length > 0) this.items.push({ kind: 'disk', at: this.#end, offset, length });
    this.#end += length;
    return this;
  }
}

/** A layout from a head, the stored blocks (starting where the head ends) and a tail (after them). */
export function makeLayout(head: SegmentList, region: BlockRegion | undefined, tail: readonly Segment[] = []): ImageLayout {
  const regionEnd = region ? region.at + region.blocks.length * region.stride : head.end;
  const tailLength = tail.reduce((n, s) => n + segmentLength(s), 0);
  return {
    length: regionEnd + tailLength,
    *segments(start: number, end: number): Iterable<Segment> {
      for (const s of head.items) {
        const c = clip(s, 0, start, end);
        if (c) yield c;
      }
      if (region && region.blocks.length > 0) {
        const first = Math.max(0, Math.floor((start - region.at) / region.stride));
        for (let k = first; k < region.blocks.length; k++) {
          const base = region.at + k * region.stride;
          if (base >= end) break;
          for (const s of region.parts(region.blocks[k]!)) {
            const c = clip(s, base, start, end);
            if (c) yield c;
          }
        }
      }
      for (const s of tail) {
        const c = clip(s, regionEnd, start, end);
        if (c) yield c;
      }
    },
  };
}

/** The indexes of the non-zero entries of `present`, ascending. */
export function presentBlocks(present: Uint8Array): Uint32Array {
  let n = 0;
  for (const p of present) if (p) n++;
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < present.length; i++) if (present[i]) out[k++] = i;
  return out;
}

/** A raw image: the disk itself. */
export function rawLayout(virtualSize: number): ImageLayout {
  return makeLayout(new SegmentList().disk(0, virtualSize), undefined);
}
