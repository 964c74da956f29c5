/**
 * Whole-export walks over an NbdClient, for the host agent:
 *   walkExtents    every extent of a context from `offset` to the end, adjacent equal-flag extents merged
 *                  across BLOCK_STATUS replies (each request asks for at most `step` bytes; a server may
 *                  answer less, the walk continues where the answer ended);
 *   selectRanges   only the ranges whose flags a predicate wants, adjacent ones merged;
 *   dataRanges     `base:allocation` ranges that may hold data (NBD_STATE_ZERO clear);
 *   dirtyRanges    `qemu:dirty-bitmap:NAME` ranges with NBD_STATE_DIRTY set;
 *   readRanges     the bytes of such ranges in pieces of at most `pieceBytes`, `parallel` reads in flight,
 *                  yielded in order (memory: at most `parallel` pieces).
 */
import type { NbdClient, NbdExtent } from './client.js';
import { CONTEXT, STATE, STATE_DIRTY } from './protocol.js';

export interface Range {
  offset: number;
  length: number;
}

export interface WalkOptions {
  offset?: number;
  /** Bytes asked for per BLOCK_STATUS request (default 1 GiB, at most 2^32 - 1 minus alignment). */
  step?: number;
}

export async function* walkExtents(client: NbdClient, context: string, opts: WalkOptions = {}): AsyncGenerator<NbdExtent> {
  const align = client.blockSizes.minimum;
  const wanted = Math.min(opts.step ?? 1 << 30, 0xffffffff);
  const step = Math.max(align, wanted - (wanted % align));
  let held: NbdExtent | null = null;
  for (let at = opts.offset ?? 0; at < client.size; ) {
    const extents = await client.blockStatus(at, Math.min(step, client.size - at), context);
    for (const e of extents) {
      if (held && held.flags === e.flags) held.length += e.length;
      else {
        if (held) yield held;
        held = { ...e };
      }
    }
    const last = extents[extents.length - 1]!;
    at = last.offset + last.length;
  }
  if (held) yield held;
}

export async function* selectRanges(extents: AsyncIterable<NbdExtent>, want: (flags: number) => boolean): AsyncGenerator<Range> {
  let held: Range | null = null;
  for await (const e of extents) {
    if (!want(e.flags)) continue;
    if (held && held.offset + held.length === e.offset) held.length += e.length;
    else {
      if (held) yield held;
      held = { offset: e.offset, length: e.length };
    }
  }
  if (held) yield held;
}

export function dataRanges(client: NbdClient, opts?: WalkOptions): AsyncGenerator<Range> {
  return selectRanges(walkExtents(client, CONTEXT.BASE_ALLOCATION, opts), (flags) => (flags & STATE.ZERO) === 0);
}

export function dirtyRanges(client: NbdClient, bitmap: string, opts?: WalkOptions): AsyncGenerator<Range> {
  return selectRanges(walkExtents(client, CONTEXT.QEMU_DIRTY_BITMAP_PREFIX + bitmap, opts), (flags) => (flags & STATE_DIRTY) !== 0);
}

export interface ReadRangesOptions {
  /** Largest piece (default the client's maxRequestBytes). */
  pieceBytes?: number;
  /** Reads in flight (default 8). */
  parallel?: number;
}

/** The data of `ranges`, as pieces `{ offset, data }` in order. */
export async function* readRanges(client: NbdClient, ranges: AsyncIterable<Range> | Iterable<Range>, opts: ReadRangesOptions = {}): AsyncGenerator<{ offset: number; data: Buffer }> {
  const piece = opts.pieceBytes ?? client.maxRequestBytes;
  const parallel = Math.max(1, opts.parallel ?? 8);
  const queue: { offset: number; data: Promise<Buffer> }[] = [];
  try {
    for await (const r of ranges) {
      for (let at = r.offset; at < r.offset + r.length; at += piece) {
        const length = Math.min(piece, r.offset + r.length - at);
        const data = client.read(at, length);
        data.catch(() => undefined); // observed when its turn comes
        queue.push({ offset: at, data });
        if (queue.length >= parallel) {
          const next = queue.shift()!;
          yield { offset: next.offset, data: await next.data };
        }
      }
    }
    while (queue.length > 0) {
      const next = queue.shift()!;
      yield { offset: next.offset, data: await next.data };
    }
  } finally {
    await Promise.allSettled(queue.map((q) => q.data));
  }
}
