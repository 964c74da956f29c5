/**
 * What each job kind does: the bridge from a job record to the engine, plus the metrics and notes each kind
 * leaves behind. The queue (queue.ts) decides when; this decides what.
 */
import { SvError } from '../errors/index.js';
import type { Engine, EngineContext, EngineDiskRef } from './engine/index.js';
import type { ApplianceMetrics } from './metrics.js';
import type { DataSource, Job, ProtectionGroup } from './model.js';
import type { JobControl, JobExecutor } from './queue.js';
import type { StateDb } from './state.js';
import { importVmToHost } from './vm-import.js';
import { backupVm, backupVmFollowing, restoreVmToHost, vmJobResult, type AgentAccess, type VmLocation } from './vm-jobs.js';

export interface ExecutorDeps {
  db: StateDb;
  engine: Engine;
  metrics: ApplianceMetrics;
  /** Called after a recovery point is committed (updates the last-good table, triggers retention). */
  onPoint(source: DataSource, disks: string[], pointId: string, time: string, job: Job): Promise<void>;
  onPruned(source: DataSource, removed: string[]): Promise<void>;
  onVerified(badBlocks: number): Promise<void>;
  /** Folders restores may write into, and where source disks may be (the engine checks both when it opens the files). */
  restoreRoots: readonly string[];
  sourceRoots: readonly string[];
  /** The disk of a point by the appliance's disk name → its index in the point. */
  diskIndex(source: DataSource, pointId: string, disk: string): Promise<number>;
  /** The host agents (VM sources' jobs run through them); absent: VM sources fail with SV_ERR_AGENT_NO_HOST. */
  agents?: AgentAccess;
}

function ctxOf(ctl: JobControl): EngineContext {
  return { signal: ctl.signal, onProgress: (d, t) => ctl.progress(d, t), log: (m) => ctl.log(m) };
}

/**
 * The disks of a source a job covers (the group's disk filter applied; empty filter = all disks) as engine
 * references: path disks become `file` references confined to the appliance's source roots.
 */
export function disksFor(source: DataSource, group: ProtectionGroup | undefined, sourceRoots: readonly string[]): EngineDiskRef[] {
  const filter = group?.disks ?? [];
  return source.disks.filter((d) => filter.length === 0 || filter.includes(d.name)).map((d) => ({
    name: d.name, source: { kind: 'file', path: d.path, ...(d.format ? { format: d.format } : {}), roots: [...sourceRoots] },
  }));
}

export function makeExecutor(deps: ExecutorDeps): JobExecutor {
  const { db, engine, metrics } = deps;
  const sourceOf = (job: Job): DataSource => {
    const s = db.sources.value.find((x) => x.id === job.sourceId);
    if (!s) throw new SvError('SV_ERR_API_NOT_FOUND', `data source ${job.sourceId ?? '(none)'} of job ${job.id} no longer exists`, { sourceId: job.sourceId ?? null });
    return s;
  };
  const agentsOf = (source: DataSource): AgentAccess => {
    if (!deps.agents) throw new SvError('SV_ERR_AGENT_NO_HOST', `data source ${source.name} is a VM: this appliance has no agent channel`, { source: source.name });
    return deps.agents;
  };
  /**
   * A VM that left the host and cluster its source is bound to (a migration out of the cluster: vm-jobs.ts
   * locateVm) and got a point on its new host: the source is bound to that host from now on (durably), so
   * that its jobs keep going there even once the old host forgets the VM or goes away.
   */
  const followVm = async (source: DataSource, at: VmLocation, ctl: JobControl): Promise<void> => {
    if (!at.movedFrom || !source.vm) return;
    await db.sources.save(db.sources.value.map((s) => (s.id === source.id && s.vm ? { ...s, host: at.host, vm: { ...s.vm, agentId: at.agentId, cluster: at.cluster } } : s)));
    ctl.log(`data source ${source.name} now follows VM ${source.vm.id} on host ${at.host}${at.cluster ? ` (cluster ${at.cluster})` : ''} (it left ${at.movedFrom.host}${at.movedFrom.cluster ? `, cluster ${at.movedFrom.cluster}` : ''})`);
  };
  /** The disk filter of the job's protection group (disk names; for a VM source, device names). */
  const groupDisks = (job: Job): readonly string[] => db.groups.value.find((g) => g.id === job.groupId)?.disks ?? [];
  return async (job, ctl) => {
    const ctx = ctxOf(ctl);
    switch (job.kind) {
      case 'backup': {
        const source = sourceOf(job);
        if (source.vm) {
          const r = await backupVmFollowing(source, engine, agentsOf(source), ctx, 'backup', groupDisks(job));
          await followVm(source, r.location, ctl);
          for (const d of r.outcome.disks) metrics.backupDone(source.name, d.disk, d);
          metrics.pointDone(r.outcome);
          await deps.onPoint(source, r.disks, r.pointId, r.time, job);
          ctl.log(`recovery point ${r.pointId} committed (${r.view.consistency}, ${r.bytesSent} bytes on the agent channel${r.committed ? '' : '; change tracking not advanced'})`);
          return vmJobResult(r);
        }
        const group = db.groups.value.find((g) => g.id === job.groupId);
        const disks = disksFor(source, group, deps.sourceRoots);
        if (disks.length === 0) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `data source ${source.name} has no disk the group protects`, { source: source.name });
        ctl.log(`backing up ${disks.map((d) => d.name).join(', ')} of ${source.name}`);
        const out = await engine.backup(source.name, disks, ctx);
        for (const d of out.disks) metrics.backupDone(source.name, d.disk, d);
        metrics.pointDone(out);
        await deps.onPoint(source, disks.map((d) => d.name), out.pointId, out.time, job);
        ctl.log(`recovery point ${out.pointId} committed`);
        return { pointId: out.pointId, time: out.time, ...out.raw };
      }
      case 'check': {
        const source = sourceOf(job);
        if (source.vm) {
          const r = await backupVm(source, engine, agentsOf(source), ctx, 'check', groupDisks(job));
          await followVm(source, r.location, ctl);
          for (const d of r.outcome.disks) metrics.backupDone(source.name, d.disk, d);
          await deps.onPoint(source, r.disks, r.pointId, r.time, { ...job, params: { ...job.params, tag: 'sync' } });
          return vmJobResult(r);
        }
        const group = db.groups.value.find((g) => g.id === job.groupId);
        const disks = disksFor(source, group, deps.sourceRoots);
        ctl.log(`consistency check of ${disks.map((d) => d.name).join(', ')} of ${source.name}`);
        const out = await engine.check(source.name, disks, ctx);
        for (const d of out.disks) metrics.backupDone(source.name, d.disk, d);
        await deps.onPoint(source, disks.map((d) => d.name), out.pointId, out.time, { ...job, params: { ...job.params, tag: 'sync' } });
        return { pointId: out.pointId, time: out.time, ...out.raw };
      }
      case 'verify': {
        const t0 = Date.now();
        const out = await engine.verify(ctx);
        metrics.verifyDuration.observe((Date.now() - t0) / 1000);
        metrics.verifyLastBadBlocks.set(out.badBlocks);
        if (out.badBlocks > 0) metrics.verifyBadBlocks.inc(out.badBlocks);
        await deps.onVerified(out.badBlocks);
        if (out.badBlocks > 0) ctl.log(`verify found ${out.badBlocks} bad block(s); the next backup or consistency check of the affected sources rewrites them`, 'warn');
        return { ...out.raw, badBlocks: out.badBlocks };
      }
      case 'prune': {
        const source = sourceOf(job);
        const ids = job.params.pointIds ?? [];
        const out = await engine.prune(source.name, ids, ctx);
        await deps.onPruned(source, out.removed);
        return { removed: out.removed, ...out.raw };
      }
      case 'gc': {
        const t0 = Date.now();
        const out = await engine.gc(ctx, job.params.full === true);
        metrics.gcDuration.observe((Date.now() - t0) / 1000);
        return out;
      }
      case 'repair': {
        const out = await engine.repair(ctx, job.params.dryRun === true);
        const quarantined = Array.isArray(out.quarantined) ? out.quarantined.length : 0;
        if (quarantined > 0 && job.params.dryRun !== true) metrics.quarantinedFiles.inc(quarantined);
        return out;
      }
      case 'restore': {
        const source = sourceOf(job);
        const { pointId, disk, target, format, items } = job.params;
        if (job.params.toHost && job.params.import && pointId) {
          const r = await importVmToHost(source, engine, agentsOf(source), { pointId }, ctx);
          metrics.restoreBytes.inc(r.bytes);
          return { host: r.host, folder: r.folder, vmId: r.vmId, name: r.name, bytes: r.bytes, bytesWritten: r.bytes, files: r.files };
        }
        if (job.params.toHost && pointId && disk !== undefined) {
          const index = await deps.diskIndex(source, pointId, disk);
          const r = await restoreVmToHost(source, engine, agentsOf(source), { pointId, disk: index, name: disk }, ctx);
          metrics.restoreBytes.inc(r.bytes);
          return { host: r.host, path: r.path, bytes: r.bytes, bytesWritten: r.bytes, files: [r.path] };
        }
        if (!pointId || !target) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `restore job ${job.id} lacks a point or a target`, {});
        if (items && disk === undefined) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `restore job ${job.id}: items need a disk`, {});
        const t0 = Date.now();
        const index = disk === undefined ? undefined : await deps.diskIndex(source, pointId, disk);
        const itemReq = items ? { items: { paths: items, volume: job.params.volume, overwrite: job.params.overwrite } } : {};
        const out = await engine.restore({ source: source.name, pointId, disk: index, target, format: format ?? 'raw', roots: deps.restoreRoots, ...itemReq }, ctx);
        const secs = Math.max((Date.now() - t0) / 1000, 1e-3);
        metrics.restoreBytes.inc(out.bytesWritten);
        metrics.restoreThroughput.set(out.bytesWritten / secs);
        return { bytesWritten: out.bytesWritten, files: out.files, ...out.raw };
      }
      default: {
        const never: never = job.kind;
        throw new SvError('SV_ERR_CORE_INTERNAL', `unknown job kind ${String(never)}`, {});
      }
    }
  };
}
