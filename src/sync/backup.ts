/**
 * backup() and check(): one run = lock the data source, register as running (gc's orphan cutoff), sync every
 * disk (disk-sync.ts), then Store.publishPoint: make the packs durable, then commit under the short commit lock:
 *   1. if a gc swept since this run loaded the index (gc generation changed), re-check the blobs this run reused
 *      from outside its previous point and rewrite any that are gone (re-read from the source);
 *   2. publish the run's index segment (atomic), then the manifest (atomic): the point exists from here on;
 *   3. drop the digests this run rewrote from the bad list.
 * A disk new in the source (more disks than the previous point) or whose size changed gets a new initial
 * copy (every block read, no change list), recorded in the point as `initial: true` with a `reason`; the
 * previous points keep their copies at their own sizes. Fewer disks than before: the point has fewer.
 * The point records how it was taken (point-fields.ts): consistency, reasons, pause/freeze time, per disk
 * tracking and change reference, and bytesSent (each disk source's bytesTransferred growth during the run).
 * A failure before step 2 deletes the run's packs (best effort; gc removes them otherwise); nothing published
 * is touched, so a crash (kill -9, ENOSPC) at any moment leaves every earlier point intact.
 */
import { SvError } from '../errors/index.js';
import { openDiskSources } from '../sources/registry.js';
import type { DiskSource } from '../sources/types.js';
import { BlobReader } from '../../storage/blobs.js';
import { COMPRESSION_LEVEL, DEFAULT_BLOCK_SIZE, PAGE_FANOUT, parsePackFileName } from '../../storage/layout.js';
import { DISK_STATS_FIELDS, configDescription, newPointId, type DiskRecord, type DiskStats, type PointKind, type PointManifest } from '../../storage/manifest.js';
import { PackWriter } from '../../storage/pack.js';
import type { Store } from '../../storage/store.js';
import { openStore } from './open-store.js';
import { storeConfiguration } from './config-files.js';
import { BackupContext } from './context.js';
import { planDisk, syncDisk, type DiskPlan } from './disk-sync.js';
import { checkPointFields, diskTracking, storedChangeRef } from './point-fields.js';
import { checkChangeList } from './ranges.js';
import type { BackupOptions, BackupResult, CheckOptions, PointSummary } from './types.js';

export { openStore } from './open-store.js';

/** A point as printed by `points --json` and returned by the API. */
export function summarize(m: PointManifest): PointSummary {
  return {
    id: m.id, source: m.source, time: m.time, kind: m.kind, consistency: m.consistency, reasons: m.reasons ?? [],
    ...(m.pauseMs !== undefined ? { pauseMs: m.pauseMs } : {}), ...(m.freezeMs !== undefined ? { freezeMs: m.freezeMs } : {}),
    changeRef: m.changeRef, parent: m.parent, ...(m.madeFrom ? { madeFrom: m.madeFrom } : {}), blockSize: m.blockSize,
    ...(m.configuration ? { configuration: configDescription(m.configuration) } : {}),
    disks: m.disks.map((d) => ({
      index: d.index, name: d.name, format: d.format, virtualSize: d.virtualSize, ...(d.stats ? { stats: d.stats } : {}), ...(d.initial ? { initial: d.initial, reason: d.reason } : {}),
      ...(d.tracking ? { tracking: d.tracking } : {}), ...(d.changeRef ? { changeRef: d.changeRef } : {}),
    })),
    ...m.stats,
    bytesSent: m.stats.bytesSent ?? 0,
  };
}

function diskCounters(ctx: BackupContext, writer: PackWriter): DiskStats {
  return {
    bytesRead: ctx.bytesRead, bytesChanged: ctx.bytesChanged, bytesNew: ctx.bytesNew, bytesStored: writer.bytesWritten, blocksChanged: ctx.blocksChanged,
    blocksNew: ctx.blocksNew, blocksZero: ctx.blocksZero, pagesWritten: ctx.pagesWritten,
  };
}

function checkBlockSize(bs: number): void {
  if (!Number.isSafeInteger(bs) || bs < 4096 || bs > 16 * 1024 * 1024 || (bs & (bs - 1)) !== 0) {
    throw new SvError('SV_ERR_SYNC_BAD_OPTIONS', `block size ${bs}: must be a power of two from 4 KiB to 16 MiB`, { blockSize: bs });
  }
}

/** Back up the disks of a data source: a new recovery point (initial, incremental or express full). */
export function backup(opts: BackupOptions): Promise<BackupResult> {
  return run(opts, false);
}

/** Consistency check: compare every block of the source with the replica, repair it, create a point. */
export function check(opts: CheckOptions): Promise<BackupResult> {
  return run({ ...opts, changed: undefined }, true);
}

async function run(opts: BackupOptions, isCheck: boolean): Promise<BackupResult> {
  const t0 = Date.now();
  const started = new Date(t0);
  if (!opts.disks.length) throw new SvError('SV_ERR_SYNC_BAD_OPTIONS', 'no disks given', {});
  if (opts.changed && opts.changed.length !== opts.disks.length) {
    throw new SvError('SV_ERR_SYNC_BAD_OPTIONS', `${opts.changed.length} change lists for ${opts.disks.length} disks`, {});
  }
  checkPointFields(opts);
  checkBlockSize(opts.blockSize ?? DEFAULT_BLOCK_SIZE);
  const store = await openStore(opts.store, true);
  const lock = await store.lockSource(opts.source, isCheck ? 'consistency check' : 'backup');
  let sources: DiskSource[] = [];
  let running: Awaited<ReturnType<Store['registerRunning']>> | undefined;
  let writer: PackWriter | undefined;
  let published = false;
  try {
    running = await store.registerRunning(opts.source, isCheck ? 'check' : 'backup');
    // A store kept open (serve, or any long-lived process) also sheds what killed backups left in its staging.
    await store.cleanStaging();
    // A new source's settings are saved only when its first point commits: a failed first backup leaves no trace.
    const settings = await store.getSource(opts.source);
    if (opts.base && (isCheck || opts.disks.length !== 1)) throw new SvError('SV_ERR_SYNC_BAD_OPTIONS', 'a base point takes exactly one disk, and no consistency check', {});
    const prev = opts.base ? await store.resolvePoint(opts.source, opts.base.point) : await store.latestPoint(opts.source);
    if (opts.base && !prev?.disks[opts.base.disk]) throw new SvError('SV_ERR_SYNC_DISK_NOT_FOUND', `point ${opts.source}@${opts.base.point} has no disk ${opts.base.disk}`, { point: opts.base.point, disk: opts.base.disk });
    /** The previous point's record of image i's disk. */
    const prevDisk = (i: number): DiskRecord | undefined => prev?.disks[opts.base ? opts.base.disk : i];
    if (isCheck && !prev) throw new SvError('SV_ERR_SYNC_NO_REPLICA', `data source "${opts.source}" has no recovery point to check against; run a backup first`, { source: opts.source });
    const bs = prev ? prev.blockSize : settings?.blockSize ?? opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    const generation = await store.gcGeneration();
    const index = await store.loadIndex();
    const bad = await store.readBad();
    const reader = new BlobReader(store.ref, index, () => store.loadIndex());
    sources = await openDiskSources(opts.disks, opts.signal);
    const sentAtOpen = sources.map((s) => s.bytesTransferred);
    const sentSince = (i: number): number => sources[i]!.bytesTransferred - sentAtOpen[i]!;
    const changed = opts.changed?.map((c, i) => (c ? checkChangeList(c, sources[i]!.info.virtualSize, `change list of disk ${i}`) : null));
    const kind: PointKind = !prev ? 'initial' : isCheck ? 'consistency-check' : changed?.every((c) => c !== null) ? 'incremental' : 'express-full';
    writer = store.packWriter();
    const ctx = new BackupContext(writer, index, bad, isCheck ? await listPackIds(store) : undefined);
    const jobs = sources.map((src, i) => {
      const fresh = prev ? newCopyReason(prevDisk(i), src.info.virtualSize) : undefined;
      return {
        index: i, source: src, prev: fresh ? undefined : prevDisk(i), changed: fresh ? null : changed?.[i] ?? null, check: isCheck, blockSize: bs, fresh,
      };
    });
    const plans: DiskPlan[] = [];
    for (const job of jobs) plans.push(await planDisk(ctx, reader, job));
    const bytesTotal = plans.reduce((n, p) => n + p.bytes, 0);
    let bytesDone = 0;
    const onBytes = (n: number): void => {
      bytesDone += n;
      opts.progress?.({ bytesDone, bytesTotal });
    };
    const disks: DiskRecord[] = [];
    for (const job of jobs) {
      // Disks are synced one after the other: the counters' growth meanwhile is this disk's share.
      const before = diskCounters(ctx, writer);
      const rec = await syncDisk(ctx, reader, job, plans[job.index]!, opts.signal, onBytes);
      const after = diskCounters(ctx, writer);
      const stats = { ...Object.fromEntries(DISK_STATS_FIELDS.map((f) => [f, after[f] - before[f]])), bytesSent: sentSince(job.index) } as unknown as DiskStats;
      const tracking = diskTracking(opts, job.index, { first: !prev, fresh: job.fresh, check: isCheck });
      const changeRef = storedChangeRef(opts.changeRefs?.[job.index]);
      disks.push({ ...rec, stats, ...(job.fresh ? { initial: true, reason: job.fresh } : {}), tracking, ...(changeRef ? { changeRef } : {}) });
    }
    reader.close();
    // The VM's configuration: given with this run, else a saved instant-recovery point keeps its base's.
    const configuration = opts.configuration ? await storeConfiguration(ctx, opts.configuration, bs, PAGE_FANOUT) : opts.base ? prev?.configuration : undefined;
    if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'backup cancelled', {});
    const manifest = await store.publishPoint({
      writer,
      entries: () => ctx.entries,
      generation,
      afterSweep: () => rewriteSwept(store, ctx, sources, bs),
      onNamed: () => { published = true; }, // from here the packs are named by a segment: never delete them on failure
      newSource: settings ? undefined : { blockSize: bs },
      repaired: ctx.repaired,
      manifest: (segmentBytes): PointManifest => ({
        format: 'shadowvault-point', version: 1, id: newPointId(started), source: opts.source, time: started.toISOString(), kind,
        consistency: opts.consistency ?? 'crash', reasons: [...(opts.reasons ?? [])],
        ...(opts.pauseMs !== undefined ? { pauseMs: opts.pauseMs } : {}), ...(opts.freezeMs !== undefined ? { freezeMs: opts.freezeMs } : {}),
        changeRef: opts.changeRef ?? null, parent: prev?.id ?? null,
        ...(opts.base && prev ? { madeFrom: { instantRecovery: prev.id } } : {}),
        blockSize: bs, fanout: PAGE_FANOUT, disks: opts.base && prev ? replaceDisk(prev.disks, opts.base.disk, disks[0]!) : disks,
        ...(configuration ? { configuration } : {}),
        stats: {
          bytesTotal: sources.reduce((n, im) => n + im.info.virtualSize, 0), bytesRead: ctx.bytesRead, bytesChanged: ctx.bytesChanged, bytesNew: ctx.bytesNew,
          bytesStored: writer!.bytesWritten + segmentBytes, blocksChanged: ctx.blocksChanged, blocksNew: ctx.blocksNew, blocksZero: ctx.blocksZero,
          pagesWritten: ctx.pagesWritten, bytesSent: sources.reduce((n, _s, i) => n + sentSince(i), 0), durationMs: Date.now() - t0,
        },
      }),
    });
    return { ...summarize(manifest), blocksRepaired: ctx.repaired.size };
  } catch (err) {
    if (writer && !published) await writer.abort();
    throw err;
  } finally {
    for (const im of sources) await im.close().catch(() => undefined);
    await running?.unregister().catch(() => undefined);
    await lock.release();
  }
}

/**
 * The base point's disks with disk `index` replaced by `rec` (keeping its index, name and format); the others as
 * they were, without their old statistics or change-tracking reference (the next backup of the source compares
 * digests against this point rather than trusting a reference taken for other content).
 */
function replaceDisk(base: readonly DiskRecord[], index: number, rec: DiskRecord): DiskRecord[] {
  return base.map((d) => {
    if (d.index === index) return { ...rec, index: d.index, name: d.name, format: d.format };
    const { stats: _stats, initial: _initial, reason: _reason, tracking: _tracking, changeRef: _changeRef, ...kept } = d;
    return kept;
  });
}

/** Why a disk of a source with earlier points needs a new initial copy, if it does. */
function newCopyReason(was: DiskRecord | undefined, size: number): string | undefined {
  if (!was) return 'disk added to the source';
  return was.virtualSize === size ? undefined : `size changed from ${was.virtualSize} to ${size}`;
}

/** The packs the store holds now (a consistency check counts a blob as stored only when its pack exists). */
async function listPackIds(store: Store): Promise<Set<bigint>> {
  const ids = new Set<bigint>();
  for await (const o of store.backend.list('packs/')) {
    const id = parsePackFileName(o.key.slice('packs/'.length));
    if (id !== undefined) ids.add(id);
  }
  return ids;
}

/** After a concurrent gc: rewrite the reused blobs it swept (re-read from the disk sources). */
async function rewriteSwept(store: Store, ctx: BackupContext, sources: readonly DiskSource[], bs: number): Promise<void> {
  const fresh = await store.loadIndex();
  const missing = ctx.foreign.filter((f) => !fresh.has(f.digest) && !ctx.pending.has(f.digest.toString('hex')));
  if (!missing.length) return;
  ctx.index = fresh;
  for (const f of missing) {
    const source = sources[f.disk]!;
    const len = Math.min(bs, source.info.virtualSize - f.block * bs);
    const r = await source.backupRange({ offset: f.block * bs, length: len, blockSize: bs, level: COMPRESSION_LEVEL, oldDigests: null });
    const digest = Buffer.from(r.digests.buffer, r.digests.byteOffset, 32);
    if (!digest.equals(f.digest)) {
      throw new SvError('SV_ERR_CORE_INTERNAL', `disk ${f.disk} block ${f.block} changed during the backup (source must not change while it is read)`, { disk: f.disk, block: f.block });
    }
    if (r.packed.length) {
      await ctx.putBlock(f.disk, f.block, digest, r.flags[0]!, len, Buffer.from(r.payload.buffer, r.payload.byteOffset + r.offsets[0]!, r.offsets[1]! - r.offsets[0]!));
    }
  }
  await ctx.writer.finish();
}
