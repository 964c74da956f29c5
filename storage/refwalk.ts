/**
 * Bringing gc's reference table (refs.ts) up to date with the store's points: a point added since the table was
 * written adds a reference to each disk root, and a page's children are counted only when the page goes from 0
 * to 1 references (so a new point costs its new pages: the subtrees it shares are not read); a point deleted
 * since drops its roots' references, and a page's children lose theirs only when it reaches 0 (so a deleted
 * point costs the pages that die with it). Points are matched by source and id (ids are unique: time + random).
 *
 * Pages of deleted points are still readable here: gc deletes a blob only after it wrote a table with no
 * reference to it. A page that cannot be read, or a count that would drop below zero, means the table is not
 * the points' (a damaged store, an edited file): the caller rebuilds it from all points (refs.ts).
 */
import { hasCode, SvError } from '../src/errors/index.js';
import { isZeroDigest } from './codec.js';
import { DIGEST_SIZE } from './layout.js';
import { pointTrees, type PointManifest } from './manifest.js';
import { pointKey, type PointRefs, type RefState } from './refs.js';
import type { Store } from './store.js';
import { readPage, treeShape, type PageReader, type TreeShape } from './tree.js';

export interface RefSyncStats {
  pointsAdded: number;
  pointsRemoved: number;
  pagesRead: number;
  /** Pages and blocks whose last reference went away. */
  blobsFreed: number;
}

export function newRefSyncStats(): RefSyncStats {
  return { pointsAdded: 0, pointsRemoved: 0, pagesRead: 0, blobsFreed: 0 };
}

/** A point's trees for gc: its disks', then its configuration files' (counted exactly like disks). */
export function pointRefsOf(m: PointManifest): PointRefs {
  return { source: m.source, id: m.id, blockSize: m.blockSize, fanout: m.fanout, disks: pointTrees(m) };
}

type Step = (state: RefState, read: PageReader, shape: TreeShape, level: number, i: number, page: Buffer, off: number, stats: RefSyncStats) => Promise<void>;

/** Read the page named at `parent[off]` (level, i) and call `child` for each of its non-zero slots, in order. */
async function eachChild(read: PageReader, shape: TreeShape, level: number, i: number, parent: Buffer, off: number, stats: RefSyncStats, child: (page: Buffer, o: number, k: number) => unknown): Promise<void> {
  const page = await readPage(read, shape, level, i, parent.subarray(off, off + DIGEST_SIZE));
  stats.pagesRead++;
  for (let k = 0, o = 0; o < page.length; k++, o += DIGEST_SIZE) {
    if (isZeroDigest(page, o)) continue;
    const r = child(page, o, k);
    if (r instanceof Promise) await r; // inner pages recurse; leaf slots are counted synchronously
  }
}

const addRef: Step = async (state, read, shape, level, i, parent, off, stats) => {
  if (isZeroDigest(parent, off) || state.table.addPage(parent, off) > 1) return;
  await eachChild(read, shape, level, i, parent, off, stats, (page, o, k) =>
    level === 0 ? state.table.addBlock(page, o) : addRef(state, read, shape, level - 1, i * shape.fanout + k, page, o, stats));
};

const dropRef: Step = async (state, read, shape, level, i, parent, off, stats) => {
  if (isZeroDigest(parent, off) || state.table.subPage(parent, off) > 0) return;
  stats.blobsFreed++;
  await eachChild(read, shape, level, i, parent, off, stats, (page, o, k) => {
    if (level > 0) return dropRef(state, read, shape, level - 1, i * shape.fanout + k, page, o, stats);
    if (state.table.subBlock(page, o) === 0) stats.blobsFreed++;
    return undefined;
  });
};

async function walkPoint(step: Step, state: RefState, read: PageReader, p: PointRefs, stats: RefSyncStats): Promise<void> {
  for (const d of p.disks) {
    const shape = treeShape(d.virtualSize, p.blockSize, p.fanout);
    await step(state, read, shape, shape.depth - 1, 0, Buffer.from(d.root, 'hex'), 0, stats);
  }
}

/**
 * Make `state` describe exactly the points the store lists now: count the points it lacks (added first, so a
 * page shared by an added and a deleted point is not read at all), then uncount those that are gone.
 */
export async function syncRefs(store: Store, read: PageReader, state: RefState, stats: RefSyncStats, signal?: AbortSignal): Promise<void> {
  const current = new Set<string>();
  const fresh: Array<{ source: string; id: string }> = [];
  for (const source of await store.listSources()) {
    for (const id of await store.listPointIds(source)) {
      const key = pointKey(source, id);
      current.add(key);
      if (!state.points.has(key)) fresh.push({ source, id });
    }
  }
  for (const { source, id } of fresh) {
    if (signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'gc cancelled', {});
    let m: PointManifest;
    try {
      m = await store.readPoint(source, id);
    } catch (err) {
      if (hasCode(err, 'SV_ERR_STORE_POINT_NOT_FOUND')) {
        current.delete(pointKey(source, id)); // pruned meanwhile
        continue;
      }
      if (!(err instanceof SvError)) throw err;
      // Its blocks are unknown: gc cannot tell what is garbage. Keep everything until the operator decides.
      throw new SvError(err.code, `${err.message}; gc cannot know which blocks point ${source}@${id} names, so it stops without deleting anything: restore the manifest, or delete the point with \`shadowvault prune ${source} --point ${id}\``, err.details, { cause: err });
    }
    const p = pointRefsOf(m);
    await walkPoint(addRef, state, read, p, stats);
    state.points.set(pointKey(source, id), p);
    stats.pointsAdded++;
  }
  for (const [key, p] of [...state.points]) {
    if (current.has(key)) continue;
    if (signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'gc cancelled', {});
    await walkPoint(dropRef, state, read, p, stats);
    state.points.delete(key);
    stats.pointsRemoved++;
  }
}
