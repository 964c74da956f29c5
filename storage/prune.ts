/**
 * Retention: a data source keeps points younger than `days` and at most `maxCount` points (0 = no limit on
 * that axis); the newest point is always kept (it is the replica the next backup compares against). Prune
 * deletes the manifests of the others, oldest first (unlink, then one folder fsync); their blobs become garbage
 * for gc. Runs under the source lock, so it never races a backup of the same source. A crash leaves a prefix
 * of the expired points deleted: the next prune finishes.
 */
import { join } from 'node:path';
import { fsyncDir, removeFile } from './fsutil.js';
import type { Retention, Store } from './store.js';

export interface PruneOptions {
  readonly source: string;
  /** Override the source's retention (and save it when `save`). */
  readonly retention?: Partial<Retention>;
  readonly save?: boolean;
  readonly dryRun?: boolean;
  readonly now?: Date;
}

export interface PruneResult {
  readonly source: string;
  readonly retention: Retention;
  readonly kept: string[];
  readonly removed: string[];
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
    const settings = await store.ensureSource(opts.source);
    const retention: Retention = {
      days: opts.retention?.days ?? settings.retention.days,
      maxCount: opts.retention?.maxCount ?? settings.retention.maxCount,
    };
    if (opts.save && (retention.days !== settings.retention.days || retention.maxCount !== settings.retention.maxCount)) {
      await store.saveSource({ ...settings, retention });
    }
    const points = await store.listPoints(opts.source);
    const removed = expiredPoints(points, retention, opts.now ?? new Date());
    if (!opts.dryRun && removed.length) {
      const dir = store.pointsDir(opts.source);
      for (const id of removed) await removeFile(join(dir, `${id}.json`));
      await fsyncDir(dir);
    }
    const gone = new Set(removed);
    return { source: opts.source, retention, kept: points.map((p) => p.id).filter((id) => !gone.has(id)), removed, durationMs: Date.now() - t0 };
  } finally {
    await lock.release();
  }
}
