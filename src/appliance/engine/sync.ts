/**
 * The Engine (index.ts) over the sync engine's programmatic API (src/sync/index.ts) and one volume store.
 *
 * Mapping:
 * - a data source's disks go to the engine in the source's order; the point records them by index, so the
 *   appliance's disk names map to point disks by position (the engine keeps file names);
 * - backup figures are reported per disk (the point's per-disk stats, under the appliance's disk names);
 * - prune removes the exact points the appliance's retention chose (retention.ts, which knows sync vs
 *   scheduled points) through the engine's prune with `pointIds` (storage/prune.ts: source lock, unlink, fsync
 *   folder; the newest point is kept; gc reclaims the blocks); ids already gone (a retry after a crash) count
 *   as removed;
 * - exportImage streams raw, vhd and vhdx images straight from the store (src/sync/image-stream.ts: layout
 *   computed up front, blocks read as the client takes them; no temporary file).
 */
import { restoreItems } from '../../files/restore-items.js';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as sync from '../../sync/index.js';
import { exportImage } from '../../sync/image-stream.js';
import type { PointListing, PointSummary } from '../../sync/index.js';
import { listQuarantine } from '../../../storage/quarantine.js';
import { extendLocks } from '../../../storage/lock-extend.js';
import { Store } from '../../../storage/store.js';
import type { DiskTracking } from '../../../storage/manifest.js';
import type { AgentRpc } from '../../agent/rpc.js';
import { agentOpener } from '../../sources/agent.js';
import { registerOpener } from '../../sources/registry.js';
import type { VmConfiguration } from '../../hypervisor/config.js';
import { DESCRIPTION_FILE, describeConfiguration } from '../../hypervisor/config.js';
import { readConfiguration } from '../../sync/config-files.js';
import { writeConfined } from '../../sync/restore-vm.js';
import type { BackupOutcome, Engine, EngineContext, EngineDiskRef, EnginePoint, ImageExport, ImageFormat, PointFields, PruneOutcome, RestoreOutcome, RestoreRequest, StoreStats } from './index.js';

const EXT: Record<ImageFormat, string> = { raw: 'img', vhd: 'vhd', vhdx: 'vhdx' };

function common(store: Store, ctx: EngineContext) {
  return { store, signal: ctx.signal, progress: (p: { bytesDone: number; bytesTotal: number }) => ctx.onProgress(p.bytesDone, p.bytesTotal) };
}

function figures(disk: string, f: { bytesRead: number; bytesChanged: number; bytesNew: number; bytesStored: number; bytesSent?: number }, tracking?: DiskTracking): BackupOutcome['disks'][number] {
  const compressionRatio = f.bytesStored > 0 ? f.bytesNew / f.bytesStored : undefined;
  const dedupRatio = f.bytesNew > 0 ? f.bytesChanged / f.bytesNew : undefined;
  return { disk, bytesRead: f.bytesRead, bytesChanged: f.bytesChanged, bytesWritten: f.bytesStored, bytesSent: f.bytesSent ?? 0, compressionRatio, dedupRatio, ...(tracking ? { tracking } : {}) };
}

/** Per-disk figures under the appliance's disk names (by position); the point's totals as "all" if a disk lacks them. */
function outcome(r: PointSummary, disks: readonly EngineDiskRef[]): BackupOutcome {
  const perDisk = r.disks.every((d) => d.stats) && r.disks.length === disks.length;
  return {
    pointId: r.id,
    time: r.time,
    consistency: r.consistency,
    reasons: r.reasons,
    ...(r.pauseMs !== undefined ? { pauseMs: r.pauseMs } : {}),
    ...(r.freezeMs !== undefined ? { freezeMs: r.freezeMs } : {}),
    disks: perDisk ? r.disks.map((d, i) => figures(disks[i]!.name, d.stats!, d.tracking)) : [figures('all', r)],
    raw: { ...r },
  };
}

function pointOf(p: PointListing): EnginePoint {
  if (p.damaged) return { id: p.id, source: p.source, time: p.time, disks: [], raw: { ...p }, damaged: { code: p.error.code, message: p.error.message } };
  return {
    id: p.id, source: p.source, time: p.time, consistency: p.consistency, reasons: p.reasons, ...(p.pauseMs !== undefined ? { pauseMs: p.pauseMs } : {}),
    ...(p.freezeMs !== undefined ? { freezeMs: p.freezeMs } : {}), bytesSent: p.bytesSent,
    disks: p.disks.map((d) => ({
      name: d.name, virtualSize: d.virtualSize, ...(d.initial ? { initial: d.initial, reason: d.reason } : {}), ...(d.tracking ? { tracking: d.tracking } : {}),
      bytesSent: d.stats?.bytesSent ?? 0,
    })),
    raw: { ...p },
  };
}

/** Bytes of the store's objects under `prefix` (packs/, index/), from the backend's listing. */
async function objectBytes(store: Store, prefix: string): Promise<number> {
  let total = 0;
  for await (const o of store.backend.list(prefix)) total += o.size;
  return total;
}

export class SyncEngine implements Engine {
  readonly available = true;
  /** The store: a folder path or an s3:// URL. */
  readonly dir: string;
  /** Local state folder of a store on object storage (serve: <data-dir>/store-state); unused for a folder. */
  readonly stateDir: string | undefined;
  #store: Promise<Store> | undefined;

  constructor(storeDir: string, stateDir?: string) {
    this.dir = storeDir;
    this.stateDir = stateDir;
  }

  /** The store, opened (and created) once. */
  #open(): Promise<Store> {
    if (!this.#store) {
      this.#store = Store.open(this.dir, { create: true, ...(this.stateDir !== undefined ? { localDir: this.stateDir } : {}) });
      this.#store.catch(() => (this.#store = undefined));
    }
    return this.#store;
  }

  async backup(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext, point: PointFields = {}): Promise<BackupOutcome> {
    const r = await sync.backup({
      ...common(await this.#open(), ctx), source, disks: disks.map((d) => d.source), ...point,
      changed: disks.some((d) => d.changed) ? disks.map((d) => d.changed ?? null) : undefined,
      tracking: disks.some((d) => d.tracking) ? disks.map((d) => d.tracking ?? null) : undefined,
      changeRefs: disks.some((d) => d.changeRef) ? disks.map((d) => d.changeRef ?? null) : undefined,
    });
    return outcome(r, disks);
  }

  async check(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext): Promise<BackupOutcome> {
    // The check point records the view's change references like a backup point: the next backup of a VM
    // source continues from the check's bitmaps instead of falling back to digest comparison.
    const r = await sync.check({
      ...common(await this.#open(), ctx), source, disks: disks.map((d) => d.source),
      changeRefs: disks.some((d) => d.changeRef) ? disks.map((d) => d.changeRef ?? null) : undefined,
    });
    return outcome(r, disks);
  }

  /** `agent` sources of this engine (in this thread) open through `rpc`. */
  attachAgents(rpc: AgentRpc): void {
    registerOpener('agent', agentOpener(rpc), { replace: true });
  }

  async listPoints(source: string | undefined): Promise<EnginePoint[]> {
    const store = await this.#open();
    const sources = source === undefined ? await sync.listSources({ store }) : [source];
    const out: EnginePoint[] = [];
    for (const s of sources) {
      if (!(await store.getSource(s))) continue;
      for (const p of await sync.listPoints({ store, source: s })) out.push(pointOf(p));
    }
    return out;
  }

  async restore(req: RestoreRequest, ctx: EngineContext): Promise<RestoreOutcome> {
    const store = await this.#open();
    const m = await store.readPoint(req.source, req.pointId);
    const base = { ...common(store, ctx), confine: req.roots };
    if (req.items) return restoreItems(store, m.id, req, req.items, ctx);
    if (req.disk !== undefined) {
      if (!req.roots) await mkdir(dirname(req.target), { recursive: true }); // confined: writeDisk creates folders
      const r = await sync.restore({ ...base, source: req.source, point: m.id, disk: req.disk, out: req.target, format: req.format });
      return { bytesWritten: r.bytesWritten, files: [r.out], raw: { ...r } };
    }
    if (!req.roots) await mkdir(req.target, { recursive: true });
    const files: string[] = [];
    let bytes = 0;
    const total = m.disks.reduce((n, d) => n + d.virtualSize, 0);
    let before = 0;
    for (const d of m.disks) {
      const out = join(req.target, `${d.index}-${d.name.replace(/\.[^.]*$/, '')}.${EXT[req.format]}`);
      const r = await sync.restore({ ...base, progress: (p) => ctx.onProgress(before + p.bytesDone, total), source: req.source, point: m.id, disk: d.index, out, format: req.format });
      before += d.virtualSize;
      bytes += r.bytesWritten;
      files.push(r.out);
    }
    // A whole VM: its configuration files too, when the point kept them (beside the disks, by their own names).
    if (m.configuration) {
      const c = await readConfiguration(store.ref, await store.loadIndex(), m, () => store.loadIndex());
      for (const f of c.files) files.push(await writeConfined(req.target, f.name, f.data, req.roots));
      files.push(await writeConfined(req.target, DESCRIPTION_FILE, Buffer.from(`${JSON.stringify({ source: m.source, point: m.id, time: m.time, ...describeConfiguration(c) }, null, 1)}\n`), req.roots));
    }
    return { bytesWritten: bytes, files, raw: { point: m.id, disks: m.disks.length, ...(m.configuration ? { configuration: m.configuration.files.map((f) => f.name) } : {}) } };
  }

  async exportImage(req: { source: string; pointId: string; disk: number; format: ImageFormat }, signal: AbortSignal): Promise<ImageExport> {
    return exportImage({ store: await this.#open(), source: req.source, point: req.pointId, disk: req.disk, format: req.format, signal });
  }

  async readConfiguration(req: { source: string; pointId: string }): Promise<VmConfiguration> {
    const store = await this.#open();
    return readConfiguration(store.ref, await store.loadIndex(), await store.readPoint(req.source, req.pointId), () => store.loadIndex());
  }

  async verify(ctx: EngineContext): Promise<{ badBlocks: number; raw: Record<string, unknown> }> {
    const r = await sync.verify({ ...common(await this.#open(), ctx) });
    return { badBlocks: r.bad.length, raw: { ...r, bad: r.bad.slice(0, 100) } };
  }

  async prune(source: string, pointIds: readonly string[], ctx: EngineContext): Promise<PruneOutcome> {
    if (pointIds.length === 0) return { removed: [], raw: {} };
    const store = await this.#open();
    // A retry of a prune interrupted by a crash names points the first attempt already deleted: they count as
    // removed (their notes go too); the engine's prune gets the ones still there (it refuses unknown ids).
    const existing = new Set(await store.listPointIds(source));
    const gone = pointIds.filter((id) => !existing.has(id));
    const r = await sync.prune({ store, signal: ctx.signal, source, pointIds: pointIds.filter((id) => existing.has(id)) });
    ctx.onProgress(pointIds.length, pointIds.length);
    ctx.log(`removed ${r.removed.length} recovery point(s) of ${source}${gone.length ? ` (${gone.length} already gone)` : ''}${r.held.length ? `; kept ${r.held.length} held (in use): ${r.held.map((h) => h.id).join(', ')}` : ''}`);
    return { removed: [...gone, ...r.removed], raw: { kept: r.kept.length, alreadyGone: gone.length, held: r.held } };
  }

  /** gc; on a store with Object Lock, then the retention of the kept points' objects is extended. */
  async gc(ctx: EngineContext, full = false): Promise<Record<string, unknown>> {
    const store = await this.#open();
    const r = await sync.gc({ ...common(store, ctx), full });
    if (store.ref.kind !== 's3' || !store.ref.objectLock) return { ...r };
    const extendLock = await extendLocks(store);
    ctx.log(`extend-lock: ${extendLock.objects} objects retained until ${extendLock.until} (${extendLock.extended} extended)`);
    return { ...r, extendLock };
  }

  async repair(ctx: EngineContext, dryRun = false): Promise<Record<string, unknown>> {
    const r = await sync.repair({ ...common(await this.#open(), ctx), dryRun });
    const lost = r.points.filter((p) => p.status === 'lost' || p.status === 'damaged');
    ctx.log(`repair${dryRun ? ' (dry run)' : ''}: ${r.entriesAfter} index entries (${r.entriesRecovered} recovered, ${r.entriesDropped} dropped), ${r.quarantined.length} file(s) quarantined, ${lost.length} point(s) lost or damaged`);
    return { ...r };
  }

  async stats(): Promise<StoreStats> {
    const store = await this.#open();
    const index = await store.loadIndex();
    const sizeBytes = (await objectBytes(store, 'packs/')) + (await objectBytes(store, 'index/'));
    return { sizeBytes, blocks: index.entryCount, quarantinedFiles: (await listQuarantine(store.dir)).length };
  }
}
