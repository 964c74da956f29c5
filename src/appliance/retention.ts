/**
 * Retention: which recovery points of one data source have expired under its group's policy.
 *
 * Rules (in this order; a point is expired when any rule says so, except the newest point of the source,
 * which is never expired so a source always keeps something to restore):
 * 1. a `sync` point is expired once a newer `scheduled` or `manual` point exists (syncs bridge the time
 *    between recovery points, as DPM's synchronisations do);
 * 2. any point older than `days` days is expired;
 * 3. of the `scheduled`/`manual` points left, only the newest `maxCount` are kept.
 * Points the appliance has no note for (made by the CLI) count as `manual`.
 */
import type { RetentionPolicy } from './model.js';

export interface RetentionPoint {
  id: string;
  /** Epoch ms. */
  time: number;
  tag: 'sync' | 'scheduled' | 'manual';
}

export function expiredPoints(points: readonly RetentionPoint[], policy: RetentionPolicy, now: number): string[] {
  if (points.length === 0) return [];
  const sorted = [...points].sort((a, b) => a.time - b.time || a.id.localeCompare(b.id));
  const newest = sorted[sorted.length - 1];
  const cutoff = now - policy.days * 86_400_000;
  const expired = new Set<string>();
  let newestKept = -Infinity;
  for (const p of sorted) if (p.tag !== 'sync') newestKept = Math.max(newestKept, p.time);
  for (const p of sorted) {
    if (p.tag === 'sync' && p.time < newestKept) expired.add(p.id);
    if (p.time < cutoff) expired.add(p.id);
  }
  const kept = sorted.filter((p) => p.tag !== 'sync' && !expired.has(p.id));
  for (const p of kept.slice(0, Math.max(0, kept.length - policy.maxCount))) expired.add(p.id);
  expired.delete(newest.id);
  return sorted.filter((p) => expired.has(p.id)).map((p) => p.id);
}
