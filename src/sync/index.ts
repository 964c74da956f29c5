/**
 * The sync engine's programmatic API: what the CLI commands and the appliance (admin API, jobs, scheduler)
 * call. Every function takes one options object with
 *   store     the store folder (created by the first backup) or an opened Store,
 *   signal?   an AbortSignal (rejects with SV_ERR_CORE_CANCELLED; nothing is committed),
 *   progress? ({bytesDone, bytesTotal}) => void,
 * and resolves to a plain JSON-able object: the same object the CLI prints with --json. Errors are SvError
 * with catalogued codes (SV_ERR_STORE_*, SV_ERR_SYNC_*, SV_ERR_FORMAT_*, SV_ERR_CORE_NO_SPACE, ...).
 *
 *   backup({store, source, disks, changed?, consistency?, changeRef?, blockSize?})  → BackupResult
 *       New recovery point of data source `source`. `changed[i]`: disk i's changed extents [[offset, length],
 *       ...] since the previous point (only they are read), or null/omitted: every block is read and compared
 *       by digest (express full). First backup: kind "initial". Locks the source (SV_ERR_STORE_LOCKED).
 *   check({store, source, disks, consistency?})                                        → BackupResult
 *       Consistency check: read every block, compare with the replica (latest point), rewrite what differs or
 *       is missing/bad in the store, create a point of kind "consistency-check".
 *   listPoints({store, source})                              → PointListing[] (oldest first)
 *       A point whose manifest is damaged is listed as {damaged: true, id, source, time, error: {code, message}}.
 *   listSources({store})                                     → string[]
 *   restore({store, source, point?, disk?, out, format?, force?})                      → RestoreResult
 *       point: id, unique id prefix, or "latest" (default). format: vhdx | vhd | raw (default: the source's).
 *       Refuses an existing `out` (SV_ERR_FORMAT_OUTPUT_EXISTS) unless force.
 *   verify({store, source?, point?, samplePercent?})                                   → VerifyResult
 *       Re-read and re-hash blobs; `bad` lists each bad blob with the points it affects; bad blobs are
 *       recorded so the next backup/check rewrites them.
 *   prune({store, source, retention?: {days?, maxCount?}, save?, dryRun?})             → PruneResult
 *       Delete points outside the retention (source settings, or `retention` given; `save` stores it).
 *   prune({store, source, pointIds})                                                   → PruneResult
 *       Delete exactly those points (the newest is kept unless damaged; an unknown id is SV_ERR_STORE_POINT_NOT_FOUND).
 *       Retention skips damaged points (`skipped`); naming them in pointIds deletes them.
 *   repair({store, dryRun?})                                                           → RepairResult
 *       Rebuild the index from the packs' record headers, quarantine what cannot be read, report per point.
 *   gc({store, repackBelow?, full?})                                                   → GcResult
 *       Reclaim blobs no point names; safe while backups run (they never lose a block they rely on).
 *       Incremental (reads only the pages of points added or deleted since the last gc); `full` rebuilds.
 *
 * The worker pool (src/pool) runs the per-block work; call closePool() from src/pool when the process is done.
 */
import { collectGarbage, type GcResult } from '../../storage/gc.js';
import { prunePoints, type PruneResult } from '../../storage/prune.js';
import { repairStore, type RepairResult } from '../../storage/repair.js';
import { pointIdTime, type Retention } from '../../storage/store.js';
import { openStore, summarize } from './backup.js';
import type { CommonOptions, DamagedPointSummary, PointListing } from './types.js';

export { backup, check, openStore, summarize } from './backup.js';
export { fileRefs } from '../sources/file.js';
export { restore } from './restore.js';
export { verify, type VerifyOptions, type VerifyResult, type BadBlob } from './verify.js';
export type * from './types.js';
export type { GcResult, PruneResult, RepairResult, Retention };

/** Every point of a source, oldest first; a point whose manifest is damaged is listed as such, with its error. */
export async function listPoints(opts: Pick<CommonOptions, 'store'> & { source: string }): Promise<PointListing[]> {
  const store = await openStore(opts.store);
  const { points, damaged } = await store.scanPoints(opts.source);
  const all: PointListing[] = [
    ...points.map(summarize),
    ...damaged.map((d): DamagedPointSummary => ({ damaged: true, id: d.id, source: d.source, time: pointIdTime(d.id), error: d.error })),
  ];
  return all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export async function listSources(opts: Pick<CommonOptions, 'store'>): Promise<string[]> {
  return (await openStore(opts.store)).listSources();
}

export interface PruneOptions extends CommonOptions {
  readonly source: string;
  readonly retention?: Partial<Retention>;
  readonly save?: boolean;
  readonly dryRun?: boolean;
  /** Remove exactly these points instead of applying retention (the newest is kept; unknown id: error). */
  readonly pointIds?: readonly string[];
}

export async function prune(opts: PruneOptions): Promise<PruneResult> {
  const store = await openStore(opts.store);
  return prunePoints(store, { source: opts.source, retention: opts.retention, save: opts.save, dryRun: opts.dryRun, pointIds: opts.pointIds, signal: opts.signal });
}

export interface GcOptions extends CommonOptions {
  readonly repackBelow?: number;
  /** Rebuild gc's reference table from every point (a full mark) instead of updating it. */
  readonly full?: boolean;
}

export async function gc(opts: GcOptions): Promise<GcResult> {
  const store = await openStore(opts.store);
  return collectGarbage(store, { repackBelow: opts.repackBelow, full: opts.full, signal: opts.signal, progress: opts.progress });
}

export interface RepairOptions extends CommonOptions {
  /** Report what a repair would do; write and move nothing. */
  readonly dryRun?: boolean;
}

/** Rebuild the index from the packs (storage/repair.ts); takes the gc and commit locks. */
export async function repair(opts: RepairOptions): Promise<RepairResult> {
  const store = await openStore(opts.store);
  return repairStore(store, { dryRun: opts.dryRun, signal: opts.signal, progress: opts.progress });
}
export { restoreVm, type RestoreVmOptions, type RestoreVmResult } from './restore-vm.js';
