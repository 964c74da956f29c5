/**
 * The appliance: state, tokens, metrics, the job queue, the scheduler and the engine, wired together.
 * `Appliance.open()` takes the state folder's lock, recovers interrupted jobs and bootstraps the admin token;
 * `start()` starts dispatching jobs and the scheduler; `stop()` stops both (running jobs end `interrupted`
 * and are retried at the next start) and releases the lock. The API (src/api/) is a client of this class.
 */
import { randomUUID } from 'node:crypto';
import { statfs, mkdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import pino, { type Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import type { ApplianceConfig } from './config.js';
import type { Engine, EnginePoint } from './engine/index.js';
import { unavailableEngine } from './engine/unavailable.js';
import { makeExecutor } from './executor.js';
import { AgentService } from './agents/index.js';
import { ApplianceMetrics } from './metrics.js';
import type { DataSource, Job, PointNote } from './model.js';
import { ownerOps, type OwnerOps } from './ownership.js';
import { notesOf, pointDiskIndex, speaksFor } from './point-disks.js';
import { Protection } from './protection.js';
import type { ApplianceRef } from '../agent/owner.js';
import { JobQueue, type JobRequest, type SourcePlace } from './queue.js';
import { locateVm } from './vm-jobs.js';
import { expiredPoints } from './retention.js';
import { Scheduler } from './scheduler.js';
import { StateDb } from './state.js';
import { TokenStore } from './tokens.js';
import { SvError } from '../errors/index.js';
import { poolStats } from '../pool/index.js';
import { removeStaleTempsUnder } from '../util/stale-temps.js';
import { removeStaleScratch } from '../export/stale-scratch.js';
import type { DiskTracking } from '../../storage/manifest.js';

export interface PoolStats {
  utilization?: number;
  queueDepth?: number;
  threads?: number;
}

type StoreSample = { sizeBytes?: number; blocks?: number; fsSizeBytes?: number; fsFreeBytes?: number; oldestUnverifiedAgeSeconds?: number };

export interface ApplianceDeps {
  engine?: Engine;
  clock?: Clock;
  logger?: Logger;
  /** Worker pool statistics for /metrics. */
  poolStats?: () => PoolStats;
  /** Scheduler tick interval in real time (ms); 0 = the scheduler is not driven (tests tick it). */
  schedulerIntervalMs?: number;
  /** Agent channel ping interval (default 15 s). */
  agentKeepaliveMs?: number;
  /** Largest agent channel frame (default 64 MiB). */
  agentMaxFrame?: number;
}

/** A recovery point as the API lists it: the engine's point with the appliance's tag and disk names. */
export interface PointView {
  readonly id: string;
  readonly time: string;
  readonly tag: PointNote['tag'];
  readonly consistency?: EnginePoint['consistency'];
  readonly reasons?: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  readonly bytesSent?: number;
  readonly disks: { name: string; file: string; virtualSize?: number; initial?: true; reason?: string; tracking?: DiskTracking; bytesSent?: number }[];
  readonly raw: Record<string, unknown>;
  readonly damaged?: { code: string; message: string };
}

export class Appliance {
  readonly config: ApplianceConfig;
  readonly log: Logger;
  readonly clock: Clock;
  readonly db: StateDb;
  readonly tokens: TokenStore;
  readonly metrics: ApplianceMetrics;
  readonly engine: Engine;
  readonly queue: JobQueue;
  readonly scheduler: Scheduler;
  readonly protection: Protection;
  /** Host agents: registry, inventory, and `agents.rpc` (AgentRpc) to call them. */
  readonly agents: AgentService;
  /** The admin token file written at this start (first start only). */
  createdAdminTokenFile: string | undefined;
  #lastGood = new Map<string, Map<string, number>>();
  #storeSample: StoreSample = {};
  #storeTimer: NodeJS.Timeout | undefined;
  #schedulerIntervalMs: number;
  #poolStats: () => PoolStats;

  private constructor(config: ApplianceConfig, deps: ApplianceDeps) {
    this.config = config;
    this.log = deps.logger ?? pino({ name: 'shadowvault' });
    this.clock = deps.clock ?? systemClock;
    this.engine = deps.engine ?? unavailableEngine;
    this.#schedulerIntervalMs = deps.schedulerIntervalMs ?? 15_000;
    const engine = this.engine;
    this.#poolStats = deps.poolStats ?? (() => {
      if (engine.poolStats) return engine.poolStats();
      const p = poolStats();
      return { utilization: p.utilization, queueDepth: p.queueSize, threads: p.threads };
    });
    this.db = StateDb.open(config.stateDir);
    this.tokens = new TokenStore(this.db, () => this.clock.now());
    this.metrics = new ApplianceMetrics({
      now: () => this.clock.now(),
      points: () => this.#pointSamples(),
      store: () => this.#storeSample,
      pool: () => this.#poolStats(),
      jobs: () => this.queue.counts(),
    });
    let owners: OwnerOps | undefined; // made below, once the agents' RPC exists; retried after inventory pushes
    this.agents = new AgentService({
      db: this.db,
      tokens: this.tokens,
      now: () => this.clock.now(),
      log: this.log.child({ component: 'agents' }),
      agentSeen: (id, up) => this.metrics.agentSeen(id, up, this.clock.now()),
      agentRemoved: (id) => this.metrics.agentRemoved(id),
      keepaliveMs: deps.agentKeepaliveMs,
      maxFrame: deps.agentMaxFrame,
      identity: () => this.identity,
      onInventory: (id) => void owners?.retry(id),
    });
    this.engine.attachAgents?.(this.agents.rpc);
    this.queue = new JobQueue({
      db: this.db,
      clock: this.clock,
      limits: config.limits,
      log: this.log,
      hostOf: (id) => this.#placeOf(id),
      exec: makeExecutor({
        db: this.db,
        engine: this.engine,
        metrics: this.metrics,
        onPoint: (source, disks, pointId, time, job) => this.#onPoint(source, disks, pointId, time, job),
        onPruned: (source, removed) => this.#onPruned(source, removed),
        onVerified: async () => {
          await this.db.store.save({ ...this.db.store.value, lastFullVerifyAt: new Date(this.clock.now()).toISOString() });
          await this.refreshStoreStats();
        },
        restoreRoots: config.restoreRoots,
        sourceRoots: config.sourceRoots,
        diskIndex: (source, pointId, disk) => this.diskIndex(source, pointId, disk),
        agents: this.agents,
      }),
    });
    this.queue.on('finished', (job: Job, seconds: number) => {
      const outcome = job.state;
      this.metrics.jobDuration.observe({ kind: job.kind, outcome }, seconds);
      this.metrics.jobsFinished.inc({ kind: job.kind, outcome });
      if (outcome === 'failed') this.metrics.jobFailures.inc({ kind: job.kind, reason: job.error?.code ?? 'unknown' });
    });
    const ownersLog = this.log.child({ component: 'ownership' });
    owners = ownerOps(this.agents.rpc, (vmId) => this.agents.vms().filter((v) => v.id === vmId && v.hostConnected).map((v) => v.hostId), ownersLog, this.db.ownerReleases, (vmId) => this.db.sources.value.some((x) => x.vm?.id === vmId));
    this.protection = new Protection(this.db, () => this.clock.now(), (id) => this.db.jobs.value.some((j) => j.sourceId === id && (j.state === 'queued' || j.state === 'running')), config.sourceRoots, async (name) => (this.engine.available ? (await this.engine.listPoints(name)).length : 0), () => this.agents.vms(), (id) => this.agents.registry.get(id)?.cluster ?? null, {
      ops: owners,
      self: () => this.identity,
      log: ownersLog,
    });
    this.scheduler = new Scheduler({
      clock: this.clock,
      groups: () => this.db.groups.value,
      state: this.db.scheduler.value,
      maintenance: config.maintenance,
      persist: (s) => this.db.scheduler.save(s),
      sink: {
        // per source: a queued job of the kind; store-wide: a queued or running one
        isQueued: (kind, sourceId) => this.db.jobs.value.some((j) => j.kind === kind && j.sourceId === sourceId && (j.state === 'queued' || (sourceId === undefined && j.state === 'running'))),
        enqueue: (req) => this.queue.enqueue(req),
      },
    });
  }

  /** Who this appliance is (identity.json: an id made once, and its name): the owner VM ownership records name. */
  get identity(): ApplianceRef {
    const v = this.db.identity.value;
    return { id: v.id ?? '', name: v.name ?? '' };
  }

  static async open(config: ApplianceConfig, deps: ApplianceDeps = {}): Promise<Appliance> {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    const a = new Appliance(config, deps);
    try {
      const id = a.db.identity.value;
      const name = config.name ?? id.name ?? hostname();
      if (!id.id || id.name !== name) await a.db.identity.save({ id: id.id ?? randomUUID(), name, createdAt: id.createdAt ?? new Date(a.clock.now()).toISOString() });
      if (await a.tokens.bootstrap(config.adminTokenFile)) a.createdAdminTokenFile = config.adminTokenFile;
      const interrupted = await a.queue.recover();
      for (const j of interrupted) a.log.warn({ jobId: j.id, kind: j.kind }, 'job was interrupted by a stop of the appliance');
      await a.#loadLastGood();
      await a.refreshStoreStats();
      const stale = await removeStaleTempsUnder(config.restoreRoots);
      if (stale.length) a.log.warn({ files: stale }, `removed ${stale.length} temp file(s) left by interrupted restores`);
      const scratch = await removeStaleScratch(tmpdir()); // the appliance's exports use the default scratch root
      if (scratch.length) a.log.warn({ folders: scratch }, `removed ${scratch.length} scratch folder(s) left by killed exporters`);
    } catch (err) {
      await a.db.close();
      throw err;
    }
    return a;
  }

  start(): void {
    this.queue.start();
    if (this.#schedulerIntervalMs > 0) this.scheduler.start(this.#schedulerIntervalMs);
    this.#storeTimer = setInterval(() => void this.refreshStoreStats(), 30_000);
    this.#storeTimer.unref();
  }

  async stop(): Promise<void> {
    this.agents.close();
    this.scheduler.stop();
    if (this.#storeTimer) clearInterval(this.#storeTimer);
    await this.scheduler.idle();
    await this.queue.stop();
    await this.engine.close?.();
    await this.db.close();
  }

  enqueue(req: JobRequest): Promise<Job> {
    return this.queue.enqueue(req);
  }

  sourceByName(name: string): DataSource | undefined {
    return this.db.sources.value.find((s) => s.name === name);
  }

  async refreshStoreStats(): Promise<void> {
    const next: StoreSample = {};
    try {
      if (this.config.storeDir.startsWith('s3://')) throw new Error('a store on object storage has no file system to measure');
      const fs = await statfs(this.config.storeDir);
      next.fsSizeBytes = fs.blocks * fs.bsize;
      next.fsFreeBytes = fs.bavail * fs.bsize;
    } catch {
      /* no store yet */
    }
    try {
      Object.assign(next, await this.engine.stats());
      // blocks verified = those of points made before the last full verify; the oldest unverified block is
      // at most as old as the oldest point made after it (or the oldest point, when none was ever verified)
      const since = this.db.store.value.lastFullVerifyAt ? Date.parse(this.db.store.value.lastFullVerifyAt) : -Infinity;
      let oldest = Infinity;
      for (const p of await this.engine.listPoints(undefined)) {
        const t = Date.parse(p.time);
        if (t > since && t < oldest) oldest = t;
      }
      next.oldestUnverifiedAgeSeconds = Number.isFinite(oldest) ? Math.max(0, (this.clock.now() - oldest) / 1000) : 0;
    } catch (err) {
      this.log.debug({ err }, 'store statistics unavailable');
    }
    this.#storeSample = next;
  }

  /** Where a source's jobs run now (the queue's per-host and per-cluster limits). */
  #placeOf(sourceId: string): SourcePlace {
    const s = this.db.sources.value.find((x) => x.id === sourceId);
    if (!s?.vm) return { host: s?.host ?? 'local', cluster: null };
    try {
      const at = locateVm(this.agents, s.vm.id, s.vm);
      return { host: at.host, cluster: at.cluster };
    } catch {
      return { host: s.host, cluster: s.vm.cluster ?? null }; // the job will fail with the reason; count it where it was
    }
  }

  #pointSamples(): { source: string; disk: string; lastGoodMs: number | undefined; intervalSeconds: number | undefined }[] {
    const out: { source: string; disk: string; lastGoodMs: number | undefined; intervalSeconds: number | undefined }[] = [];
    for (const s of this.db.sources.value) {
      const groups = this.db.groups.value.filter((g) => g.enabled && g.members.includes(s.id));
      if (groups.length === 0) continue;
      const interval = Math.min(...groups.map((g) => g.syncFrequencyMinutes * 60));
      const disks = new Set(groups.flatMap((g) => s.disks.filter((d) => g.disks.length === 0 || g.disks.includes(d.name)).map((d) => d.name)));
      for (const disk of disks) out.push({ source: s.name, disk, lastGoodMs: this.#lastGood.get(s.name)?.get(disk), intervalSeconds: interval });
    }
    return out;
  }

  #markGood(source: string, disk: string, ms: number): void {
    let m = this.#lastGood.get(source);
    if (!m) this.#lastGood.set(source, (m = new Map()));
    if ((m.get(disk) ?? -Infinity) < ms) m.set(disk, ms);
  }

  async #loadLastGood(): Promise<void> {
    if (!this.engine.available) return;
    try {
      for (const p of await this.engine.listPoints(undefined)) for (const d of p.disks) this.#markGood(p.source, d.name, Date.parse(p.time));
    } catch (err) {
      this.log.warn({ err }, 'cannot list recovery points at start');
    }
  }

  async #onPoint(source: DataSource, disks: string[], pointId: string, time: string, job: Job): Promise<void> {
    for (const d of disks) this.#markGood(source.name, d, Date.parse(time));
    const note: PointNote = { pointId, sourceId: source.id, tag: job.params.tag ?? 'manual', time, disks };
    await this.db.points.save([...this.db.points.value, note]);
    await this.applyRetention(source).catch((err: unknown) => this.log.warn({ err, source: source.name }, 'retention check failed'));
  }

  async #onPruned(source: DataSource, removed: string[]): Promise<void> {
    const gone = new Set(removed);
    const sources = this.db.sources.value; // the notes of an earlier source of the series go with its points too
    await this.db.points.save(this.db.points.value.filter((n) => !(gone.has(n.pointId) && speaksFor(n, source, sources))));
  }

  /** The recovery points of a source with their tags (points without a note count as manual) and disk names. */
  async pointsOf(source: DataSource): Promise<PointView[]> {
    const notes = notesOf(source, this.db.points.value, this.db.sources.value);
    const pts = await this.engine.listPoints(source.name);
    return pts.map((p) => {
      const note = notes.get(p.id);
      const disks = p.disks.map((d, i) => ({
        name: note?.disks?.[i] ?? source.disks[i]?.name ?? d.name, file: d.name, virtualSize: d.virtualSize, ...(d.initial ? { initial: d.initial, reason: d.reason } : {}),
        ...(d.tracking ? { tracking: d.tracking } : {}), ...(d.bytesSent !== undefined ? { bytesSent: d.bytesSent } : {}),
      }));
      const how = p.consistency ? { consistency: p.consistency, reasons: p.reasons ?? [], pauseMs: p.pauseMs, freezeMs: p.freezeMs, bytesSent: p.bytesSent } : {};
      return { id: p.id, time: p.time, tag: note?.tag ?? 'manual', ...how, disks, raw: p.raw, ...(p.damaged ? { damaged: p.damaged } : {}) };
    });
  }

  /** Index in a point of its disk named `disk`, by the point's own record (point-disks.ts); no such point: SV_ERR_API_NOT_FOUND. */
  async diskIndex(source: DataSource, pointId: string, disk: string): Promise<number> {
    const point = (await this.pointsOf(source)).find((p) => p.id === pointId);
    if (!point) throw new SvError('SV_ERR_API_NOT_FOUND', `no recovery point ${pointId} of data source ${source.name}`, { sourceId: source.id, pointId });
    return pointDiskIndex(source.name, point, disk);
  }

  /** Queue a prune of the source's expired points, under the most generous policy of its groups. Returns the job. */
  async applyRetention(source: DataSource): Promise<Job | undefined> {
    const groups = this.db.groups.value.filter((g) => g.members.includes(source.id));
    if (groups.length === 0) return undefined;
    const policy = { days: Math.max(...groups.map((g) => g.retention.days)), maxCount: Math.max(...groups.map((g) => g.retention.maxCount)) };
    const points = (await this.pointsOf(source)).filter((p) => !p.damaged); // a damaged point is deleted explicitly only
    const expired = expiredPoints(points.map((p) => ({ id: p.id, time: Date.parse(p.time), tag: p.tag })), policy, this.clock.now());
    if (expired.length === 0 || this.queue.pending('prune', source.id)) return undefined;
    return this.queue.enqueue({ kind: 'prune', trigger: 'retention', sourceId: source.id, groupId: groups[0].id, params: { pointIds: expired } });
  }
}
