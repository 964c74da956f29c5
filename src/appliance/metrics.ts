/**
 * The appliance's Prometheus metrics (prom-client), one registry per appliance instance.
 *
 * Cardinality: labels are only data source names, disk names (both bounded by the configured protection),
 * job kinds, outcomes and error codes (bounded by the catalogue), consistency modes and pause modes (3 and 2
 * values), change-tracking fallback reasons (the fixed FALLBACK_REASONS: free text is mapped onto them), and
 * agent ids (one per paired host: bounded by the hosts an administrator pairs; a revoked agent's series are
 * removed with agentRemoved). Never per-block, per-job, per-point or per-VM-id labels.
 * Names are documented in docs/API.md; the Grafana dashboards and alert rules in grafana/ use them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { JOB_KINDS } from './model.js';
import { CONSISTENCIES, type Consistency, type DiskTracking } from '../../storage/manifest.js';
import { FALLBACK_REASONS, fallbackReason } from './fallback.js';

export { FALLBACK_REASONS, fallbackReason, type FallbackReason } from './fallback.js';

const DURATION_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600];

/** Values sampled at scrape time (lag, store size, pool). Each returns undefined when unknown. */
export interface MetricSamplers {
  /** Per source/disk: last good point time (ms) and the sync interval (s) the source is scheduled at. */
  points(): { source: string; disk: string; lastGoodMs: number | undefined; intervalSeconds: number | undefined }[];
  store(): { sizeBytes?: number; blocks?: number; fsSizeBytes?: number; fsFreeBytes?: number; oldestUnverifiedAgeSeconds?: number; quarantinedFiles?: number };
  pool(): { utilization?: number; queueDepth?: number; threads?: number };
  jobs(): Record<string, number>;
  now(): number;
}

export interface BackupFigures {
  bytesRead: number;
  bytesChanged: number;
  bytesWritten: number;
  /** Bytes that crossed a process or network boundary (absent: 0). */
  bytesSent?: number;
  compressionRatio?: number;
  dedupRatio?: number;
}

/** How a finished backup's point was taken: what `pointDone` counts (BackupOutcome has these fields). */
export interface PointFigures {
  readonly consistency: Consistency;
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  readonly disks: readonly { readonly tracking?: DiskTracking }[];
}

const PAUSE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

export class ApplianceMetrics {
  readonly registry = new Registry();
  readonly bytesRead: Counter<'source' | 'disk'>;
  readonly bytesChanged: Counter<'source' | 'disk'>;
  readonly bytesWritten: Counter<'source' | 'disk'>;
  readonly compression: Gauge<'source' | 'disk'>;
  readonly dedup: Gauge<'source' | 'disk'>;
  readonly jobDuration: Histogram<'kind' | 'outcome'>;
  readonly jobFailures: Counter<'kind' | 'reason'>;
  readonly jobsFinished: Counter<'kind' | 'outcome'>;
  readonly gcDuration: Histogram<never>;
  readonly verifyDuration: Histogram<never>;
  readonly verifyBadBlocks: Counter<never>;
  readonly verifyLastBadBlocks: Gauge<never>;
  readonly quarantinedFiles: Counter<never>;
  readonly restoreBytes: Counter<never>;
  readonly restoreThroughput: Gauge<never>;
  readonly authFailures: Counter<never>;
  readonly bytesSent: Counter<'source' | 'disk'>;
  readonly backupsByConsistency: Counter<'consistency'>;
  readonly pauseDuration: Histogram<'mode'>;
  readonly trackingFallbacks: Counter<'reason'>;
  readonly agentUp: Gauge<'agent'>;
  readonly agentLastSeen: Gauge<'agent'>;

  constructor(samplers: MetricSamplers) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges *_total, which `promtool check metrics` rejects (a counter suffix)
    for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(n);
    const sd = ['source', 'disk'] as const;
    new Gauge({
      name: 'shadowvault_last_good_point_timestamp_seconds',
      help: 'Unix time of the newest good recovery point, per data source and disk.',
      labelNames: sd,
      registers,
      collect() {
        this.reset();
        for (const p of samplers.points()) if (p.lastGoodMs !== undefined) this.set({ source: p.source, disk: p.disk }, p.lastGoodMs / 1000);
      },
    });
    new Gauge({
      name: 'shadowvault_recovery_point_lag_seconds',
      help: 'Seconds since the newest good recovery point, per data source and disk (absent before the first one).',
      labelNames: sd,
      registers,
      collect() {
        this.reset();
        const now = samplers.now();
        for (const p of samplers.points()) if (p.lastGoodMs !== undefined) this.set({ source: p.source, disk: p.disk }, Math.max(0, (now - p.lastGoodMs) / 1000));
      },
    });
    new Gauge({
      name: 'shadowvault_sync_interval_seconds',
      help: 'The synchronisation interval the data source is scheduled at (its protection group\'s frequency).',
      labelNames: sd,
      registers,
      collect() {
        this.reset();
        for (const p of samplers.points()) if (p.intervalSeconds !== undefined) this.set({ source: p.source, disk: p.disk }, p.intervalSeconds);
      },
    });
    this.bytesRead = new Counter({ name: 'shadowvault_backup_read_bytes_total', help: 'Bytes read from protected disks by backups.', labelNames: sd, registers });
    this.bytesChanged = new Counter({ name: 'shadowvault_backup_changed_bytes_total', help: 'Bytes found changed since the previous recovery point.', labelNames: sd, registers });
    this.bytesWritten = new Counter({ name: 'shadowvault_backup_written_bytes_total', help: 'Bytes written to the store (after deduplication and compression).', labelNames: sd, registers });
    this.compression = new Gauge({ name: 'shadowvault_backup_compression_ratio', help: 'Uncompressed / compressed bytes of the new blocks of the last backup.', labelNames: sd, registers });
    this.dedup = new Gauge({ name: 'shadowvault_backup_dedup_ratio', help: 'Changed bytes / bytes of new blocks stored by the last backup.', labelNames: sd, registers });
    this.jobDuration = new Histogram({ name: 'shadowvault_job_duration_seconds', help: 'Duration of finished jobs by kind and outcome.', labelNames: ['kind', 'outcome'], buckets: DURATION_BUCKETS, registers });
    this.jobFailures = new Counter({ name: 'shadowvault_job_failures_total', help: 'Failed jobs by kind and reason (the error code).', labelNames: ['kind', 'reason'], registers });
    this.jobsFinished = new Counter({ name: 'shadowvault_jobs_finished_total', help: 'Finished jobs by kind and outcome.', labelNames: ['kind', 'outcome'], registers });
    // every kind × outcome from the start, so dashboards and alerts see 0 rather than no data
    for (const kind of JOB_KINDS) for (const outcome of ['succeeded', 'failed', 'cancelled', 'interrupted']) this.jobsFinished.inc({ kind, outcome }, 0);
    new Gauge({
      name: 'shadowvault_jobs',
      help: 'Jobs currently in each state (queued, running).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(samplers.jobs())) this.set({ state }, n);
      },
    });
    this.gcDuration = new Histogram({ name: 'shadowvault_gc_duration_seconds', help: 'Duration of store garbage collections.', buckets: DURATION_BUCKETS, registers });
    this.verifyDuration = new Histogram({ name: 'shadowvault_verify_duration_seconds', help: 'Duration of store verifications.', buckets: DURATION_BUCKETS, registers });
    this.verifyBadBlocks = new Counter({ name: 'shadowvault_verify_bad_blocks_total', help: 'Blocks found damaged or missing by verify jobs.', registers });
    this.verifyLastBadBlocks = new Gauge({ name: 'shadowvault_verify_last_bad_blocks', help: 'Damaged or missing blocks found by the last verify job.', registers });
    this.quarantinedFiles = new Counter({ name: 'shadowvault_repair_quarantined_files_total', help: 'Store files repair jobs moved to the quarantine folder.', registers });
    this.restoreBytes = new Counter({ name: 'shadowvault_restore_bytes_total', help: 'Bytes written by restores and image downloads.', registers });
    this.restoreThroughput = new Gauge({ name: 'shadowvault_restore_throughput_bytes_per_second', help: 'Throughput of the last finished restore.', registers });
    this.authFailures = new Counter({ name: 'shadowvault_api_auth_failures_total', help: 'Requests refused for a missing or unknown token.', registers });
    this.bytesSent = new Counter({ name: 'shadowvault_backup_sent_bytes_total', help: 'Bytes that crossed the network or a process boundary to back up protected disks (0 for local files).', labelNames: sd, registers });
    this.backupsByConsistency = new Counter({ name: 'shadowvault_backups_total', help: 'Recovery points created by backups, by consistency (application, crash, offline).', labelNames: ['consistency'], registers });
    for (const consistency of CONSISTENCIES) this.backupsByConsistency.inc({ consistency }, 0);
    this.pauseDuration = new Histogram({
      name: 'shadowvault_backup_pause_seconds', help: 'How long a VM was paused (mode="offline") or its guest frozen (mode="online") to take a point in time.',
      labelNames: ['mode'], buckets: PAUSE_BUCKETS, registers,
    });
    for (const mode of ['offline', 'online']) this.pauseDuration.zero({ mode });
    this.trackingFallbacks = new Counter({
      name: 'shadowvault_change_tracking_fallbacks_total', help: `Disks backed up without a usable change tracker (digest comparison or a new full copy), by reason (${FALLBACK_REASONS.join(', ')}).`,
      labelNames: ['reason'], registers,
    });
    for (const reason of FALLBACK_REASONS) this.trackingFallbacks.inc({ reason }, 0);
    this.agentUp = new Gauge({ name: 'shadowvault_agent_up', help: 'Whether a paired host agent\'s control channel is connected (1) or not (0).', labelNames: ['agent'], registers });
    this.agentLastSeen = new Gauge({ name: 'shadowvault_agent_last_seen_timestamp_seconds', help: 'Unix time a host agent was last heard from.', labelNames: ['agent'], registers });
    const storeGauge = (name: string, help: string, pick: (s: ReturnType<MetricSamplers['store']>) => number | undefined): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = pick(samplers.store());
          if (v !== undefined) this.set(v);
        },
      });
    };
    storeGauge('shadowvault_store_size_bytes', 'Bytes the volume store holds (blocks and indexes).', (s) => s.sizeBytes);
    storeGauge('shadowvault_store_blocks', 'Blocks in the volume store.', (s) => s.blocks);
    storeGauge('shadowvault_store_quarantined_files', 'Files in the store\'s quarantine folder (damaged or foreign files moved aside).', (s) => s.quarantinedFiles);
    storeGauge('shadowvault_store_filesystem_size_bytes', 'Size of the file system holding the store.', (s) => s.fsSizeBytes);
    storeGauge('shadowvault_store_filesystem_free_bytes', 'Free bytes on the file system holding the store.', (s) => s.fsFreeBytes);
    storeGauge('shadowvault_store_oldest_unverified_block_age_seconds', 'Age of the oldest block not verified since it was written (0 when all are verified).', (s) => s.oldestUnverifiedAgeSeconds);
    const poolGauge = (name: string, help: string, pick: (s: ReturnType<MetricSamplers['pool']>) => number | undefined): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = pick(samplers.pool());
          if (v !== undefined) this.set(v);
        },
      });
    };
    poolGauge('shadowvault_pool_utilization_ratio', 'Worker pool utilisation (0..1).', (s) => s.utilization);
    poolGauge('shadowvault_pool_queue_depth', 'Tasks waiting for a worker thread.', (s) => s.queueDepth);
    poolGauge('shadowvault_pool_threads', 'Worker threads in the pool.', (s) => s.threads);
  }

  /** Record one finished backup of one disk (the last good point time comes from the samplers). */
  backupDone(source: string, disk: string, f: BackupFigures): void {
    const l = { source, disk };
    this.bytesRead.inc(l, f.bytesRead);
    this.bytesChanged.inc(l, f.bytesChanged);
    this.bytesWritten.inc(l, f.bytesWritten);
    this.bytesSent.inc(l, f.bytesSent ?? 0);
    if (f.compressionRatio !== undefined && Number.isFinite(f.compressionRatio)) this.compression.set(l, f.compressionRatio);
    if (f.dedupRatio !== undefined && Number.isFinite(f.dedupRatio)) this.dedup.set(l, f.dedupRatio);
  }

  /**
   * Record how one finished backup's point was taken: its consistency, the pause (offline) or freeze (online)
   * time, and each disk whose change tracking fell back (a tracking record that is not 'bitmap' and says why).
   */
  pointDone(p: PointFigures): void {
    this.backupsByConsistency.inc({ consistency: p.consistency });
    if (p.pauseMs !== undefined) this.pauseDuration.observe({ mode: 'offline' }, p.pauseMs / 1000);
    if (p.freezeMs !== undefined) this.pauseDuration.observe({ mode: 'online' }, p.freezeMs / 1000);
    for (const d of p.disks) {
      if (d.tracking && d.tracking.method !== 'bitmap' && d.tracking.reason !== undefined) this.trackingFallbacks.inc({ reason: fallbackReason(d.tracking.reason) });
    }
  }

  /** A host agent was heard from (`up`: its control channel is connected) or went away (`up` false). Called by the agent channel. */
  agentSeen(agentId: string, up: boolean, atMs: number = Date.now()): void {
    this.agentUp.set({ agent: agentId }, up ? 1 : 0);
    if (up) this.agentLastSeen.set({ agent: agentId }, atMs / 1000);
  }

  /** A revoked agent: its series go (bounded cardinality). */
  agentRemoved(agentId: string): void {
    this.agentUp.remove({ agent: agentId });
    this.agentLastSeen.remove({ agent: agentId });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
