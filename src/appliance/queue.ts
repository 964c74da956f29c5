/**
 * The durable job queue and its dispatcher.
 *
 * State: every job is a record in jobs.json (state.ts), saved at each transition (queued → running →
 * succeeded | failed | cancelled | interrupted); progress between transitions lives in memory.
 * Invariants:
 * - at most one job runs per data source; gc runs alone (nothing starts beside it, it waits for the rest);
 * - at most `maxConcurrentJobs` run on the appliance, `maxJobsPerHost` per source host and
 *   `maxJobsPerCluster` per cluster (`placeOf`: for a VM source, the node that runs the VM now and its
 *   cluster; the limits are the appliance's, no node of a cluster coordinates the others);
 * - jobs start in creation order among those allowed to start;
 * - after a crash, `recover()` marks every job found `running` as `interrupted` (SV_ERR_JOB_INTERRUPTED)
 *   and queues a retry (attempt + 1, `retryOf`, `retryCode`) while attempts remain; a graceful stop does the
 *   same for the jobs it aborts. So no job is lost and none runs twice at once;
 * - a retry interrupted with the same error code as the attempt it retried is not retried again: it ends
 *   `failed` with SV_ERR_JOB_RETRY_LIMIT naming the repeated code (a job stuck on a FIFO or a hung device
 *   would otherwise hang every start);
 * - cancel answers within CANCEL_WAIT_MS even when the job does not stop (the engine gives up a stuck
 *   thread after a few seconds, see engine/threaded.ts; the job then ends).
 * One log line (pino) per transition.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SvError, hasCode, toWire, type WireError } from '../errors/index.js';
import type { Clock } from './clock.js';
import type { Limits } from './config.js';
import { EXCLUSIVE_KINDS as EXCLUSIVE, FINAL_STATES, type Job, type JobKind, type JobParams, type JobState, type JobTrigger } from './model.js';
import type { StateDb } from './state.js';

const MAX_LOG_LINES = 200;
/** Longest a cancel request waits for the job to stop before it answers with the job as it is. */
const CANCEL_WAIT_MS = 8000;

/** Where a source's jobs run: its host (a VM source: the node that runs the VM now) and that host's cluster. */
export interface SourcePlace {
  readonly host: string;
  readonly cluster: string | null;
}

export interface JobRequest {
  kind: JobKind;
  trigger: JobTrigger;
  sourceId?: string;
  groupId?: string;
  params?: JobParams;
}

/** Runs one job; resolves with its JSON result or rejects with the reason it failed. */
export type JobExecutor = (job: Job, ctl: JobControl) => Promise<Record<string, unknown>>;

export interface JobControl {
  readonly signal: AbortSignal;
  progress(done: number, total: number): void;
  log(message: string, level?: 'info' | 'warn' | 'error'): void;
}

interface Running {
  abort: AbortController;
  started: number;
  promise: Promise<void>;
}

export class JobQueue extends EventEmitter {
  #db: StateDb;
  #clock: Clock;
  #limits: Limits;
  #log: Logger;
  #exec: JobExecutor;
  #placeOf: (sourceId: string) => SourcePlace;
  #running = new Map<string, Running>();
  #started = false;
  #stopping = false;

  constructor(opts: { db: StateDb; clock: Clock; limits: Limits; log: Logger; exec: JobExecutor; hostOf: (sourceId: string) => string | SourcePlace }) {
    super();
    this.#db = opts.db;
    this.#clock = opts.clock;
    this.#limits = opts.limits;
    this.#log = opts.log;
    this.#exec = opts.exec;
    this.#placeOf = (id) => {
      const p = opts.hostOf(id);
      return typeof p === 'string' ? { host: p, cluster: null } : p;
    };
  }

  #iso(): string {
    return new Date(this.#clock.now()).toISOString();
  }

  list(): Job[] {
    return this.#db.jobs.value;
  }

  get(id: string): Job | undefined {
    return this.#db.jobs.value.find((j) => j.id === id);
  }

  counts(): Record<string, number> {
    const c: Record<string, number> = { queued: 0, running: 0 };
    for (const j of this.#db.jobs.value) if (j.state === 'queued' || j.state === 'running') c[j.state] += 1;
    return c;
  }

  /** An unfinished job of this kind for this source, if any. */
  pending(kind: JobKind, sourceId: string | undefined): Job | undefined {
    return this.#db.jobs.value.find((j) => j.kind === kind && j.sourceId === sourceId && (j.state === 'queued' || j.state === 'running'));
  }

  #line(job: Job, message: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    job.log.push({ time: this.#iso(), level, message });
    if (job.log.length > MAX_LOG_LINES) job.log.splice(0, job.log.length - MAX_LOG_LINES);
  }

  #transition(job: Job, state: JobState, message: string): void {
    const from = job.state;
    job.state = state;
    const level = state === 'failed' || state === 'interrupted' ? 'warn' : 'info';
    this.#line(job, message, level);
    this.#log[level]({ jobId: job.id, kind: job.kind, sourceId: job.sourceId, from, to: state, attempt: job.attempt, code: job.error?.code }, `job ${job.kind} ${from} -> ${state}`);
    this.emit('transition', job, from);
  }

  async #save(): Promise<void> {
    const jobs = this.#db.jobs.value;
    const finished = jobs.filter((j) => FINAL_STATES.has(j.state));
    if (finished.length > this.#limits.keepFinishedJobs) {
      const drop = new Set(finished.slice(0, finished.length - this.#limits.keepFinishedJobs).map((j) => j.id));
      await this.#db.jobs.save(jobs.filter((j) => !drop.has(j.id)));
    } else {
      await this.#db.jobs.save(jobs);
    }
  }

  async enqueue(req: JobRequest, extra: { attempt?: number; retryOf?: string; retryCode?: string } = {}): Promise<Job> {
    const job: Job = {
      id: randomUUID(),
      kind: req.kind,
      state: 'queued',
      trigger: req.trigger,
      sourceId: req.sourceId,
      groupId: req.groupId,
      params: req.params ?? {},
      attempt: extra.attempt ?? 1,
      retryOf: extra.retryOf,
      retryCode: extra.retryCode,
      createdAt: this.#iso(),
      progress: { bytesDone: 0, bytesTotal: 0, rate: 0, etaSeconds: null },
      log: [],
    };
    this.#db.jobs.value.push(job);
    this.#line(job, `queued (${req.trigger}${extra.retryOf ? `, retry of ${extra.retryOf}` : ''})`);
    this.#log.info({ jobId: job.id, kind: job.kind, sourceId: job.sourceId, to: 'queued', trigger: job.trigger, attempt: job.attempt }, `job ${job.kind} queued`);
    await this.#save();
    this.emit('transition', job, undefined);
    this.#pump();
    return job;
  }

  async #retryOrGiveUp(job: Job): Promise<void> {
    if (job.state === 'interrupted' && job.attempt < this.#limits.maxAttempts && job.kind !== 'restore') {
      await this.enqueue({ kind: job.kind, trigger: 'retry', sourceId: job.sourceId, groupId: job.groupId, params: job.params }, { attempt: job.attempt + 1, retryOf: job.id, retryCode: job.error?.code });
    }
  }

  /** End a job that was interrupted with `error`: `interrupted` (retried), or `failed` if its previous attempt ended the same way. */
  #interrupted(job: Job, error: WireError): void {
    if (job.retryCode !== undefined && job.retryCode === error.code) {
      job.error = new SvError('SV_ERR_JOB_RETRY_LIMIT', `attempt ${job.attempt} ended like the attempt it retried (${error.code}: ${error.message}); not retried again: fix the cause and start the job anew`, { repeated: error.code, attempt: job.attempt, retryOf: job.retryOf }).toWire();
      this.#transition(job, 'failed', `failed: ${error.code} again; not retried again (SV_ERR_JOB_RETRY_LIMIT)`);
      return;
    }
    job.error = error;
    this.#transition(job, 'interrupted', `interrupted: ${error.message}`);
  }

  /** After a start: jobs left `running` by a crash become `interrupted` and are retried by policy. */
  async recover(): Promise<Job[]> {
    const interrupted = this.#db.jobs.value.filter((j) => j.state === 'running');
    for (const job of interrupted) {
      job.finishedAt = this.#iso();
      this.#interrupted(job, new SvError('SV_ERR_JOB_INTERRUPTED', 'the appliance stopped while this job ran', { attempt: job.attempt }).toWire());
    }
    if (interrupted.length) await this.#save();
    for (const job of interrupted) await this.#retryOrGiveUp(job);
    return interrupted;
  }

  start(): void {
    this.#started = true;
    this.#pump();
  }

  /** Abort running jobs (they end `interrupted` and are retried at the next start) and wait for them. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const r of this.#running.values()) r.abort.abort(new SvError('SV_ERR_JOB_INTERRUPTED', 'the appliance is shutting down', {}));
    await Promise.all([...this.#running.values()].map((r) => r.promise));
    await this.#db.jobs.flush();
  }

  async cancel(id: string): Promise<Job> {
    const job = this.get(id);
    if (!job) throw new SvError('SV_ERR_API_NOT_FOUND', `no job ${id}`, { id });
    if (job.state === 'queued') {
      job.finishedAt = this.#iso();
      this.#transition(job, 'cancelled', 'cancelled before it started');
      await this.#save();
      this.#pump();
      return job;
    }
    const r = this.#running.get(id);
    if (job.state !== 'running' || !r) throw new SvError('SV_ERR_JOB_NOT_CANCELLABLE', `job ${id} is ${job.state}; only queued or running jobs can be cancelled`, { id, state: job.state });
    r.abort.abort(new SvError('SV_ERR_CORE_CANCELLED', 'cancelled by request', {}));
    this.#line(job, 'cancel requested');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([r.promise, new Promise((resolve) => (timer = setTimeout(resolve, CANCEL_WAIT_MS)))]);
    clearTimeout(timer);
    return job;
  }

  /** Resolves when the job reaches a final state. */
  waitFor(id: string): Promise<Job> {
    const job = this.get(id);
    if (!job) return Promise.reject(new SvError('SV_ERR_API_NOT_FOUND', `no job ${id}`, { id }));
    if (FINAL_STATES.has(job.state)) return Promise.resolve(job);
    return new Promise((resolve) => {
      const on = (j: Job): void => {
        if (j.id === id && FINAL_STATES.has(j.state)) {
          this.off('transition', on);
          resolve(j);
        }
      };
      this.on('transition', on);
    });
  }

  /** Resolves when no job is queued or running. */
  async idle(): Promise<void> {
    while (true) {
      const open = this.#db.jobs.value.filter((j) => !FINAL_STATES.has(j.state));
      if (open.length === 0) return;
      await Promise.all(open.map((j) => this.waitFor(j.id)));
    }
  }

  #canStart(job: Job, running: Job[]): boolean {
    if (running.length >= this.#limits.maxConcurrentJobs) return false;
    if (running.some((r) => EXCLUSIVE.has(r.kind))) return false;
    if (EXCLUSIVE.has(job.kind)) return running.length === 0;
    if (job.sourceId !== undefined) {
      if (running.some((r) => r.sourceId === job.sourceId)) return false;
      const at = this.#placeOf(job.sourceId);
      const places = running.filter((r) => r.sourceId !== undefined).map((r) => this.#placeOf(r.sourceId!));
      if (places.filter((p) => p.host === at.host).length >= this.#limits.maxJobsPerHost) return false;
      if (at.cluster !== null && places.filter((p) => p.cluster === at.cluster).length >= this.#limits.maxJobsPerCluster) return false;
    } else if (running.some((r) => r.kind === job.kind)) {
      return false;
    }
    return true;
  }

  #pump(): void {
    if (!this.#started || this.#stopping) return;
    const jobs = this.#db.jobs.value;
    const running = jobs.filter((j) => j.state === 'running');
    for (const job of jobs) {
      if (job.state !== 'queued') continue;
      // a queued gc (or repair) holds back everything queued after it, so it cannot starve
      if (!this.#canStart(job, running)) {
        if (EXCLUSIVE.has(job.kind)) break;
        continue;
      }
      running.push(job);
      this.#launch(job);
    }
  }

  #launch(job: Job): void {
    const abort = new AbortController();
    const started = this.#clock.now();
    job.startedAt = new Date(started).toISOString();
    job.error = undefined;
    this.#transition(job, 'running', `started (attempt ${job.attempt})`);
    const saved = this.#save();
    const realStart = Date.now();
    const ctl: JobControl = {
      signal: abort.signal,
      progress: (done, total) => {
        const secs = Math.max((Date.now() - realStart) / 1000, 1e-3);
        const rate = done / secs;
        job.progress = { bytesDone: done, bytesTotal: Math.max(total, done), rate: Math.round(rate), etaSeconds: rate > 0 && total >= done ? Math.round((total - done) / rate) : null };
      },
      log: (message, level = 'info') => this.#line(job, message, level),
    };
    const promise = (async () => {
      await saved.catch(() => undefined);
      let outcome: { ok: true; result: Record<string, unknown> } | { ok: false; err: unknown };
      try {
        outcome = { ok: true, result: await this.#exec(job, ctl) };
      } catch (err) {
        outcome = { ok: false, err };
      }
      this.#running.delete(job.id);
      job.finishedAt = this.#iso();
      if (outcome.ok) {
        job.result = outcome.result;
        if (job.progress.bytesTotal > 0) job.progress = { ...job.progress, bytesDone: job.progress.bytesTotal, etaSeconds: 0 };
        this.#transition(job, 'succeeded', 'succeeded');
      } else {
        // an abort decides the state; a stuck engine's error says more than the abort reason
        const stuck = hasCode(outcome.err, 'SV_ERR_JOB_STUCK');
        const why = abort.signal.aborted ? abort.signal.reason : outcome.err;
        const error = toWire(stuck ? outcome.err : why);
        if (hasCode(why, 'SV_ERR_JOB_INTERRUPTED')) this.#interrupted(job, error);
        else if (hasCode(why, 'SV_ERR_CORE_CANCELLED')) {
          job.error = error;
          this.#transition(job, 'cancelled', stuck ? `cancelled: ${error.message}` : 'cancelled');
        } else {
          job.error = error;
          this.#transition(job, 'failed', `failed: ${error.code}: ${error.message}`);
        }
      }
      this.emit('finished', job, (Date.now() - realStart) / 1000);
      await this.#save().catch((err: unknown) => this.#log.error({ err }, 'saving jobs failed'));
      if (job.state === 'interrupted') await this.#retryOrGiveUp(job).catch((err: unknown) => this.#log.error({ err }, 'queueing a retry failed'));
      this.#pump();
    })();
    this.#running.set(job.id, { abort, started, promise });
  }
}
