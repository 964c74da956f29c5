/**
 * Synchronising one disk into the store: the coordinator's inner loop.
 *
 * 1. Load the previous point's tree of this disk (inner pages only) → old leaf digests.
 * 2. Work out which blocks to look at (the region): all of them (digest comparison, consistency check), or
 *    the change list rounded to blocks, plus blocks whose stored copy verify found bad. Blocks of the region
 *    in 'zero'/'unallocated' extents get the zero digest without a read; the others go to the disk source's
 *    backupRange (src/sources/: the worker task storeBackupRange for files and NBD exports, the agent for an
 *    agent's disk; up to 16 MiB each, never crossing a leaf page), which hashes every block and compresses
 *    only the blocks whose digest differs from the old one.
 *    Ranges in flight are bounded by bytes (INFLIGHT_TASKS_PER_WORKER × TASK_BYTES per pool worker) and by
 *    count (INFLIGHT_MAX_TASKS): hundreds of one-block ranges of an incremental are in flight at once (an agent
 *    source batches them into few calls), while 8 MiB ranges stay at 3 per worker as before.
 * 3. Results are applied one at a time (a serial queue: the pack writer is sequential): new blobs are
 *    appended to the run's packs, known ones reused; when a leaf's tasks are done its page is written if it
 *    changed. Then the inner pages above changed leaves are rewritten (tree.buildUpper).
 * Unchanged blocks whose digest is known bad (or, in a consistency check, missing from the store) are re-read
 * and rewritten, so the store heals on the next sync.
 */
import { setMaxListeners } from 'node:events';
import { isStoreDamage, SvError } from '../errors/index.js';
import { poolSize } from '../pool/index.js';
import { sourceName } from '../sources/registry.js';
import type { DiskSource, RangeResult } from '../sources/types.js';
import type { BlobReader } from '../../storage/blobs.js';
import { isZeroDigest, ZERO_DIGEST } from '../../storage/codec.js';
import { COMPRESSION_LEVEL, DIGEST_SIZE, PAGE_FANOUT } from '../../storage/layout.js';
import type { DiskRecord } from '../../storage/manifest.js';
import { allZero, buildUpper, childCount, loadLevels, readPage, treeShape, zeroLevels, type TreeShape } from '../../storage/tree.js';
import type { BackupContext } from './context.js';
import { blocksOfBytes, dataBlocks, intersectRanges, mergeRanges, rangeLength, subtractRanges, type Range } from './ranges.js';
import type { ChangedExtent } from './types.js';

/** Old leaf pages read ahead of the one being merged (see syncDisk). */
const PAGES_AHEAD = 16;

export const TASK_BYTES = 8 * 1024 * 1024;
/** Range bytes in flight per pool worker, in TASK_BYTES (workers stay busy while results wait for the serial queue). */
export const INFLIGHT_TASKS_PER_WORKER = 3;
/** Most ranges in flight whatever their size. */
export const INFLIGHT_MAX_TASKS = 1024;

export interface DiskJob {
  readonly index: number;
  /** The open disk source (src/sources/): its blocks are hashed and compressed through `backupRange`. */
  readonly source: DiskSource;
  readonly prev: DiskRecord | undefined;
  /** Changed extents, or null to compare every block. */
  readonly changed: readonly ChangedExtent[] | null;
  /** Consistency check: also rewrite unchanged blocks missing from the store. */
  readonly check: boolean;
  readonly blockSize: number;
}

interface LeafState {
  readonly leaf: number;
  readonly first: number;
  readonly page: Buffer;
  readonly oldPage: Buffer;
  remaining: number;
}

/** Blocks of the region, per disk, for progress: computed before any read. */
export interface DiskPlan {
  readonly shape: TreeShape;
  readonly old: Buffer[];
  readonly region: Range[];
  readonly reads: Range[];
  readonly zeros: Range[];
  /** Blocks holding data per the image's extents. */
  readonly data: Range[];
  readonly bytes: number;
}

export async function planDisk(ctx: BackupContext, reader: BlobReader, job: DiskJob): Promise<DiskPlan> {
  const vs = job.source.info.virtualSize;
  const bs = job.blockSize;
  const shape = treeShape(vs, bs, PAGE_FANOUT);
  if (job.prev && job.prev.virtualSize !== vs) {
    throw new SvError('SV_ERR_SYNC_SOURCE_CHANGED_SIZE', `disk ${job.index} (${job.source.info.path}) is ${vs} bytes, its replica ${job.prev.virtualSize}: back it up as a new data source (or a new initial copy)`, {
      disk: job.index, path: job.source.info.path, virtualSize: vs, replicaSize: job.prev.virtualSize,
    });
  }
  let old = zeroLevels(shape);
  let rebuild = false;
  if (job.prev) {
    try {
      old = await loadLevels(reader.readPage, shape, Buffer.from(job.prev.root, 'hex'));
    } catch (err) {
      // A damaged inner page of the replica: rebuild this disk's tree from the source (every block re-read,
      // whatever the change list says).
      if (!isStoreDamage(err)) throw err;
      rebuild = true;
    }
  }
  let region: Range[] = [[0, shape.blockCount]];
  if (job.prev && job.changed && !rebuild) {
    region = blocksOfBytes(job.changed, bs, shape.blockCount);
    if (ctx.bad.size) region = mergeRanges([...region, ...(await badBlocks(ctx, reader, shape, old[0]!))]);
  }
  const data = dataBlocks(await job.source.extents(), bs, shape.blockCount);
  const reads = intersectRanges(region, data);
  const zeros = subtractRanges(region, data);
  const bytes = Math.min(vs, rangeLength(region) * bs);
  return { shape, old, region, reads, zeros, data, bytes };
}

/** Blocks whose old digest is in the bad list (scans the leaves: only when the bad list is not empty). */
async function badBlocks(ctx: BackupContext, reader: BlobReader, shape: TreeShape, leaves: Buffer): Promise<Range[]> {
  const out: Range[] = [];
  for (let leaf = 0; leaf < shape.levelCounts[0]!; leaf++) {
    const d = leaves.subarray(leaf * DIGEST_SIZE, (leaf + 1) * DIGEST_SIZE);
    if (isZeroDigest(d)) continue;
    const page = await readPage(reader.readPage, shape, 0, leaf, d).catch((err: unknown) => {
      if (isStoreDamage(err)) return undefined;
      throw err;
    });
    if (!page) {
      out.push([leaf * shape.fanout, leaf * shape.fanout + childCount(shape, 0, leaf)]);
      continue;
    }
    for (let i = 0; i < page.length / DIGEST_SIZE; i++) {
      if (ctx.bad.has(page.toString('hex', i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE))) out.push([leaf * shape.fanout + i, leaf * shape.fanout + i + 1]);
    }
  }
  return out;
}

/** Ranges of `list` clipped to [a, b), starting the scan at list index `from` (returns the next start). */
function clip(list: readonly Range[], a: number, b: number, from: number): { out: Range[]; next: number } {
  let i = from;
  while (i < list.length && list[i]![1] <= a) i++;
  const out: Range[] = [];
  let k = i;
  while (k < list.length && list[k]![0] < b) {
    out.push([Math.max(a, list[k]![0]), Math.min(b, list[k]![1])]);
    k++;
  }
  return { out, next: i };
}

export async function syncDisk(
  ctx: BackupContext, reader: BlobReader, job: DiskJob, plan: DiskPlan, signal: AbortSignal | undefined, onBytes: (n: number) => void,
): Promise<DiskRecord> {
  const { shape, old } = plan;
  const bs = job.blockSize;
  const vs = job.source.info.virtualSize;
  const F = shape.fanout;
  const levels = old.map((b) => Buffer.from(b));
  const useOld = job.prev !== undefined;
  const blockLen = (i: number): number => Math.min(bs, vs - i * bs);
  const maxBlocks = Math.max(1, Math.floor(TASK_BYTES / bs));
  // In flight: bytes, so that many small ranges (an incremental's scattered blocks: batched into few calls by
  // an agent source) keep the pool busy while big ones still bound memory; and a count, to bound bookkeeping.
  const limitBytes = poolSize() * INFLIGHT_TASKS_PER_WORKER * TASK_BYTES;
  let inflightBytes = 0;
  let freed: () => void = () => undefined; // wakes the submitter waiting for room (one waiter: this loop)
  if (signal) setMaxListeners(INFLIGHT_MAX_TASKS + 16, signal); // each task listens for the abort

  let serial: Promise<void> = Promise.resolve();
  let failure: unknown;
  const inflight = new Set<Promise<void>>();
  const enqueue = (fn: () => Promise<void>): Promise<void> => {
    const p = serial.then(() => (failure ? undefined : fn()));
    serial = p.catch((err: unknown) => { failure ??= err; });
    return serial;
  };

  const finalize = async (st: LeafState): Promise<void> => {
    if (st.page.equals(st.oldPage)) return;
    const digest = allZero(st.page) ? ZERO_DIGEST : await ctx.putPage(Buffer.from(st.page));
    digest.copy(levels[0]!, st.leaf * DIGEST_SIZE);
  };

  const apply = async (st: LeafState, start: number, res: RangeResult): Promise<void> => {
    const digests = Buffer.from(res.digests.buffer, res.digests.byteOffset, res.digests.byteLength);
    const payload = Buffer.from(res.payload.buffer, res.payload.byteOffset, res.payload.byteLength);
    const n = digests.length / DIGEST_SIZE;
    const packed = new Uint8Array(n);
    for (let j = 0; j < res.packed.length; j++) {
      const i = res.packed[j]!;
      packed[i] = 1;
      await ctx.putBlock(job.index, start + i, digests.subarray(i * 32, i * 32 + 32), res.flags[j]!, blockLen(start + i), payload.subarray(res.offsets[j]!, res.offsets[j + 1]!));
    }
    const reread: number[] = [];
    for (let i = 0; i < n; i++) {
      const d = digests.subarray(i * 32, i * 32 + 32);
      const slot = (start - st.first + i) * 32;
      if (st.page.compare(d, 0, 32, slot, slot + 32) !== 0) {
        ctx.blocksChanged++;
        ctx.bytesChanged += blockLen(start + i);
        d.copy(st.page, slot);
      }
      if (isZeroDigest(d)) ctx.blocksZero++;
      else if (!packed[i] && (ctx.bad.has(d.toString('hex')) || (job.check && !ctx.isStored(d)))) reread.push(start + i);
    }
    for (const b of reread) {
      const r = await job.source.backupRange({ offset: b * bs, length: blockLen(b), blockSize: bs, level: COMPRESSION_LEVEL, oldDigests: null }, signal);
      if (r.packed.length) {
        await ctx.putBlock(job.index, b, Buffer.from(r.digests.buffer, r.digests.byteOffset, 32), r.flags[0]!, blockLen(b), Buffer.from(r.payload.buffer, r.payload.byteOffset + r.offsets[0]!, r.offsets[1]! - r.offsets[0]!));
      }
    }
    if (--st.remaining === 0) await finalize(st);
  };

  let zi = 0;
  let ri = 0;
  const region = plan.region;
  const leafSet = new Set<number>();
  for (const [a, b] of region) for (let l = Math.floor(a / F); l <= Math.floor((b - 1) / F); l++) leafSet.add(l);
  const leaves = [...leafSet].sort((x, y) => x - y);
  // The old leaf pages are read ahead, PAGES_AHEAD at a time: on object storage each is a GET round trip, and
  // a day's scattered changes touch a leaf every 64 MiB of disk.
  const oldPages = new Map<number, Promise<Buffer>>();
  const oldPageOf = (leaf: number): Promise<Buffer> => readPage(reader.readPage, shape, 0, leaf, old[0]!.subarray(leaf * 32, leaf * 32 + 32));
  try {
    for (let li = 0; li < leaves.length; li++) {
      const leaf = leaves[li]!;
      for (let k = li; k < Math.min(leaves.length, li + PAGES_AHEAD); k++) {
        if (oldPages.has(leaves[k]!)) continue;
        const p = oldPageOf(leaves[k]!);
        p.catch(() => undefined); // awaited (and its failure handled) when its leaf comes
        oldPages.set(leaves[k]!, p);
      }
      if (signal?.aborted) failure ??= new SvError('SV_ERR_CORE_CANCELLED', 'backup cancelled', {});
      if (failure) break; // in-flight tasks are awaited below: nothing runs after this function returns
      const first = leaf * F;
      const end = first + childCount(shape, 0, leaf);
      let damaged = false;
      const pending = oldPages.get(leaf)!;
      oldPages.delete(leaf);
      const oldPage = await pending.catch((err: unknown) => {
        if (!isStoreDamage(err)) throw err;
        damaged = true; // the replica's leaf is unreadable: re-read the whole leaf from the source
        return Buffer.alloc(childCount(shape, 0, leaf) * DIGEST_SIZE);
      });
      const st: LeafState = { leaf, first, page: Buffer.from(oldPage), oldPage, remaining: 1 };
      const whole: Range[] = [[first, end]];
      const z = clip(plan.zeros, first, end, zi);
      zi = z.next;
      const r = clip(plan.reads, first, end, ri);
      ri = r.next;
      const zeroRanges = damaged ? subtractRanges(whole, plan.data) : z.out;
      const readRanges = damaged ? intersectRanges(whole, plan.data) : r.out;
      for (const [a, b] of zeroRanges) {
        for (let i = a; i < b; i++) {
          const slot = (i - first) * 32;
          if (!isZeroDigest(st.page, slot)) {
            ctx.blocksChanged++;
            ctx.bytesChanged += blockLen(i);
            st.page.fill(0, slot, slot + 32);
          }
          ctx.blocksZero++;
        }
        onBytes(Math.min(vs, b * bs) - a * bs);
      }
      for (const [a0, b] of readRanges) {
        for (let a = a0; a < b; a += maxBlocks) {
          const e = Math.min(b, a + maxBlocks);
          const offset = a * bs;
          const length = Math.min(vs, e * bs) - offset;
          while (inflight.size >= INFLIGHT_MAX_TASKS || (inflight.size > 0 && inflightBytes + length > limitBytes)) await new Promise<void>((r) => (freed = r));
          if (failure) break;
          st.remaining++;
          inflightBytes += length;
          const oldDigests = useOld ? new Uint8Array(oldPage.subarray((a - first) * 32, (e - first) * 32)) : null;
          const task = job.source.backupRange({ offset, length, blockSize: bs, level: COMPRESSION_LEVEL, oldDigests }, signal)
            .then((res) => enqueue(async () => {
              ctx.bytesRead += length;
              await apply(st, a, res);
              onBytes(length);
            }), (err: unknown) => { failure ??= err; });
          const tracked: Promise<void> = task.finally(() => {
            inflight.delete(tracked);
            inflightBytes -= length;
            freed();
          });
          inflight.add(tracked);
        }
      }
      await enqueue(async () => {
        if (--st.remaining === 0) await finalize(st);
      });
    }
  } catch (err) {
    failure ??= err; // stop submitting; what is in flight is awaited below
  }
  await Promise.all(inflight);
  await serial;
  if (failure) throw failure;
  const { root } = await buildUpper(shape, levels, old, ctx.putPage);
  return { index: job.index, name: sourceName(job.source.ref), format: job.source.info.format, virtualSize: vs, root: root.toString('hex'), depth: shape.depth };
}
