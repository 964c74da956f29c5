/**
 * Retention: a data source keeps points younger than `days` and at most `maxCount` points (0 = no limit on
 * that axis); the newest point is always kept (it is the replica the next backup compares against). Prune
 * deletes the manifests of the others, oldest first (unlink, then one folder fsync); their blobs become garbage
 * for gc. Runs under the source lock, so it never races a backup of the same source. A crash leaves a prefix
 * of the expired points deleted: the next prune finishes.
 *
 * `pointIds` instead of retention: delete exactly those points (the appliance's retention chooses them; it
 * knows sync vs scheduled points). Same lock and commit protocol. Every id must name a point of the source
 * (else SV_ERR_STORE_POINT_NOT_FOUND before anything is deleted); the newest point is never deleted (it stays
 * in `kept`), unless its manifest is damaged: naming a damaged point is how an operator deletes it (gc keeps its
 * blocks until then). Retention settings are neither applied nor saved in that mode.
 *
 * Object Lock: a manifest still under retention cannot be deleted; its point stays (in `kept`) and is listed in
 * `lockedSkipped` with its retention date; a later prune deletes it once the retention has passed.
 *
 * Retention skips damaged points (listed in `skipped` with their error): they are neither counted nor deleted.
 *
 * Held points (holds.ts: browsed, exported, being restored) are never deleted, in either mode: they stay in
 * `kept` and are listed in `held` with their holders; the next prune after the holds end deletes them. The delete
 * step runs with the source's holds frozen (holds.ts), so a hold granted during a prune is either seen here or
 * refused because its point is gone.
 */
import { hasCode, SvError } from '../src/errors/index.js';
import type { WireError } from '../src/errors/index.js';
import type { Retention, Store } from './store.js';
import { describeHold, withHoldsFrozen } from './holds.js';

export interface PruneOptions {
  readonly source: string;
  /** Override the source's retention (and save it when `save`). */
  readonly retention?: Partial<Retention>;
  readonly save?: boolean;
  readonly dryRun?: boolean;
  readonly now?: Date;
  /** Delete exactly these points (not retention); the newest point is kept; an unknown id is an error. */
  readonly pointIds?: readonly string[];
  /** Checked before anything is deleted (SV_ERR_CORE_CANCELLED). */
  readonly signal?: AbortSignal;
}

export interface PruneResult {
  readonly source: string;
  readonly retention: Retention;
  readonly kept: string[];
  readonly removed: string[];
  /** Points whose manifest is damaged: retention neither counts nor deletes them (name them in `pointIds`). */
  readonly skipped: Array<{ id: string; error: WireError }>;
  /** Points that would have been deleted but are held (kept): each with who holds it. */
  readonly held: Array<{ id: string; holders: string[] }>;
  /** Points that would have been deleted but whose manifest Object Lock retention keeps (kept). */
  readonly lockedSkipped: Array<{ id: string; retainUntil: string | null }>;
  readonly durationMs: number;
}

/** Which point ids (oldest first) retention removes. */
export function expiredPoints(points: ReadonlyArray<{ id: string; time: string }>, r: Retention, now: Date): string[] {
  const out: string[] = [];
  const n = points.length;
  points.forEach((p, i) => {
    if (i === n - 1) return;
    const ageDays = (now.getTime() - Date.parse(p.time)) / 86_400_000;
    const tooOld = r.days > 0 && ageDays > r.days;
    const tooMany = r.maxCount > 0 && n - i > r.maxCount;
    if (tooOld || tooMany) out.push(p.id);
  });
  return out;
}

export async function prunePoints(store: Store, opts: PruneOptions): Promise<PruneResult> {
  const t0 = Date.now();
  const lock = await store.lockSource(opts.source, 'prune');
  try {
    if (opts.pointIds) return await pruneChosen(store, opts, opts.pointIds, t0);
    const settings = await store.ensureSource(opts.source);
    const retention: Retention = {
      days: opts.retention?.days ?? settings.retention.days,
      maxCount: opts.retention?.maxCount ?? settings.retention.maxCount,
    };
    if (opts.save && (retention.days !== settings.retention.days || retention.maxCount !== settings.retention.maxCount)) {
      await store.saveSource({ ...settings, retention });
    }
    const { points, damaged } = await store.scanPoints(opts.source);
    const expired = expiredPoints(points, retention, opts.now ?? new Date());
    if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'prune cancelled', {});
    const { removed, held, lockedSkipped } = await removeUnheld(store, opts.source, expired, opts.dryRun === true);
    const gone = new Set(removed);
    const skipped = damaged.map((d) => ({ id: d.id, error: d.error }));
    return { source: opts.source, retention, kept: points.map((p) => p.id).filter((id) => !gone.has(id)), removed, skipped, held, lockedSkipped, durationMs: Date.now() - t0 };
  } finally {
    await lock.release();
  }
}

/** Delete the points of `ids` that are not held (holds frozen meanwhile); `dryRun`: only say which. */
async function removeUnheld(store: Store, source: string, ids: readonly string[], dryRun: boolean): Promise<Pick<PruneResult, 'removed' | 'held' | 'lockedSkipped'>> {
  if (!ids.length) return { removed: [], held: [], lockedSkipped: [] };
  return withHoldsFrozen(store, source, async (holds) => {
    const unheld = ids.filter((id) => !holds.has(id));
    const held = ids.filter((id) => holds.has(id)).map((id) => ({ id, holders: holds.get(id)!.map(describeHold) }));
    if (dryRun) return { removed: unheld, held, lockedSkipped: [] };
    return { ...(await removePoints(store, source, unheld)), held };
  });
}

/** The commit: delete each manifest (durable when it resolves), except those Object Lock keeps. Caller holds the source lock. */
async function removePoints(store: Store, source: string, ids: readonly string[]): Promise<Pick<PruneResult, 'removed' | 'lockedSkipped'>> {
  const removed: string[] = [];
  const lockedSkipped: PruneResult['lockedSkipped'] = [];
  for (const id of ids) {
    try {
      await store.backend.delete(`points/${source}/${id}.json`);
      removed.push(id);
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_BACKEND_LOCKED')) throw err;
      const until = (err as SvError).details as { retainUntil?: unknown } | undefined;
      lockedSkipped.push({ id, retainUntil: typeof until?.retainUntil === 'string' ? until.retainUntil : null });
    }
  }
  return { removed, lockedSkipped };
}

/** `pointIds` mode (caller holds the source lock). */
async function pruneChosen(store: Store, opts: PruneOptions, chosen: readonly string[], t0: number): Promise<PruneResult> {
  const settings = await store.getSource(opts.source);
  const retention: Retention = settings?.retention ?? { days: 0, maxCount: 0 };
  const ids = await store.listPointIds(opts.source);
  const have = new Set(ids);
  const unknown = chosen.filter((id) => !have.has(id));
  if (unknown.length) {
    throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `prune: data source "${opts.source}" has no recovery point ${unknown.join(', ')} in ${store.backend.location}`, { source: opts.source, ids: unknown });
  }
  const { damaged } = await store.scanPoints(opts.source);
  const broken = new Set(damaged.map((d) => d.id));
  const newest = ids[ids.length - 1];
  const want = new Set(chosen.filter((id) => id !== newest || broken.has(id)));
  if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'prune cancelled', {});
  const { removed, held, lockedSkipped } = await removeUnheld(store, opts.source, ids.filter((id) => want.has(id)), opts.dryRun === true);
  const gone = new Set(removed);
  const skipped = damaged.filter((d) => !want.has(d.id)).map((d) => ({ id: d.id, error: d.error }));
  return { source: opts.source, retention, kept: ids.filter((id) => !gone.has(id)), removed, skipped, held, lockedSkipped, durationMs: Date.now() - t0 };
}
