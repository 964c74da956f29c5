/**
 * The Engine used by `serve`: long operations run in a dedicated engine thread (thread.ts; messages in protocol.ts) so the API
 * stays responsive during full-speed backups; quick reads (points, stats) and image downloads (streams) run
 * here on a SyncEngine of the same store (the store is safe for concurrent users: see storage/).
 * If the engine thread dies, every pending call fails with SV_ERR_CORE_INTERNAL and the next call starts a
 * new thread.
 *
 * Stuck operations: a call that has not answered `stuckAfterMs` after its signal aborted is blocked where no
 * signal reaches (open() of a FIFO, a read from a hung device or FUSE/NFS mount, in a libuv thread). Its
 * thread is abandoned: the call rejects with SV_ERR_JOB_STUCK, the thread's other calls with
 * SV_ERR_JOB_ENGINE_RESTARTED, terminate() is requested (it completes only if the system call ever returns)
 * and the next call starts a new thread. `abandoned()` counts such threads: a process that has one cannot
 * exit normally (libuv joins its threads at exit), so `serve` then ends by its signal (see serve.ts).
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { AgentRpc } from '../../agent/rpc.js';
import { serveRelay } from '../../sources/agent-relay.js';
import { SvError, fromWire } from '../../errors/index.js';
import type { VmConfiguration } from '../../hypervisor/config.js';
import type { BackupOutcome, Engine, EngineContext, EngineDiskRef, EnginePoint, PointFields, ImageExport, ImageFormat, PruneOutcome, RestoreOutcome, RestoreRequest, StoreStats, VerifyOutcome } from './index.js';
import { SyncEngine } from './sync.js';
import type { EngineThreadData, EngineThreadMessage, EngineThreadReply, OpName, OpRequest, OpResult } from './protocol.js';

/** The module that registers the engine thread's `agent` opener over the relay port. */
const AGENT_OPENER_MODULE = new URL('../../sources/agent-thread.js', import.meta.url).href;

/** How long an aborted call may take to answer before its thread counts as stuck. */
export const STUCK_AFTER_MS = 3000;

/** A call in flight; `resolve` takes the result its reply carries (the reply's `op` is the call's). */
interface Pending {
  worker: Worker;
  op: OpName;
  ctx: EngineContext;
  resolve(v: OpResult<OpName>): void;
  reject(e: unknown): void;
}

export class ThreadedEngine implements Engine {
  readonly available = true;
  readonly local: SyncEngine;
  /** The engine thread's worker pool, as last reported (once a second). */
  #pool: { utilization: number; queueDepth: number; threads: number } = { utilization: 0, queueDepth: 0, threads: 0 };
  #storeDir: string;
  #stateDir: string | undefined;
  #worker: Worker | undefined;
  #pending = new Map<number, Pending>();
  #next = 0;
  #abandoned = 0;
  #stuckAfterMs: number;
  #openerModules: readonly string[];
  #agents: AgentRpc | undefined;

  /**
   * `openerModules`: URLs of modules the engine thread imports before it runs any operation; each registers
   * the opener of a disk source kind the thread cannot open by itself (src/sources/registry.ts
   * `registerOpener`; e.g. `agent`, whose opener talks to the appliance's agent channel).
   */
  constructor(storeDir: string, opts: { stuckAfterMs?: number; openerModules?: readonly string[]; stateDir?: string } = {}) {
    this.#storeDir = storeDir;
    this.#stateDir = opts.stateDir;
    this.#stuckAfterMs = opts.stuckAfterMs ?? STUCK_AFTER_MS;
    this.#openerModules = opts.openerModules ?? [];
    this.local = new SyncEngine(storeDir, opts.stateDir);
  }

  /** Engine threads given up because a call in them stayed blocked after an abort. */
  abandoned(): number {
    return this.#abandoned;
  }

  /** Reject every pending call of `w` with `why(id)`. */
  #failAll(w: Worker, why: (id: number, p: Pending) => SvError): void {
    for (const [id, p] of this.#pending) {
      if (p.worker !== w) continue;
      this.#pending.delete(id);
      p.reject(why(id, p));
    }
  }

  /** Give up the thread of call `stuckId`, which did not answer within stuckAfterMs of its abort. */
  #abandon(w: Worker, stuckId: number): void {
    if (this.#worker === w) this.#worker = undefined;
    this.#abandoned += 1;
    const secs = this.#stuckAfterMs / 1000;
    this.#failAll(w, (id, p) => id === stuckId
      ? new SvError('SV_ERR_JOB_STUCK', `the ${p.op} did not stop within ${secs} s after it was aborted: it is blocked in a system call (a FIFO, a hung device or network file system?); its engine thread was abandoned and a new one serves the next jobs`, { op: p.op, waitedMs: this.#stuckAfterMs })
      : new SvError('SV_ERR_JOB_ENGINE_RESTARTED', `the engine thread was replaced because another operation in it was stuck; this ${p.op} was stopped with it`, { op: p.op }));
    w.unref();
    void w.terminate().catch(() => undefined);
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    // With agents: a relay port for the engine thread's `agent` opener (registered by agent-thread.js).
    const relay = this.#agents ? new MessageChannel() : undefined;
    const stopRelay = relay && this.#agents ? serveRelay(relay.port1, this.#agents) : undefined;
    const data: EngineThreadData = {
      storeDir: this.#storeDir,
      ...(this.#stateDir !== undefined ? { stateDir: this.#stateDir } : {}),
      openerModules: [...this.#openerModules, ...(relay ? [AGENT_OPENER_MODULE] : [])],
      ...(relay ? { agentPort: relay.port2 } : {}),
    };
    const w = new Worker(new URL('./thread.js', import.meta.url), { workerData: data, transferList: relay ? [relay.port2] : [] });
    if (stopRelay) w.once('exit', stopRelay);
    w.on('message', (m: EngineThreadReply) => {
      if (m.type === 'pool') {
        this.#pool = { utilization: m.utilization, queueDepth: m.queueDepth, threads: m.threads };
        return;
      }
      const p = this.#pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') p.ctx.onProgress(m.done, m.total);
      else if (m.type === 'log') p.ctx.log(m.message);
      else {
        this.#pending.delete(m.id);
        if (m.type === 'result') p.resolve(m.value);
        else p.reject(fromWire(m.error));
      }
    });
    const fail = (why: string): void => {
      if (this.#worker === w) this.#worker = undefined;
      this.#failAll(w, () => new SvError('SV_ERR_CORE_INTERNAL', `the engine thread stopped (${why}) during the operation`, {}));
    };
    w.on('error', (err) => fail(err.message));
    w.on('exit', (code) => fail(`exit code ${code}`));
    this.#worker = w;
    return w;
  }

  #call<K extends OpName>(op: K, request: OpRequest<K>, ctx: EngineContext): Promise<OpResult<K>> {
    const id = ++this.#next;
    const w = this.#thread();
    return new Promise<OpResult<K>>((resolve, reject) => {
      if (ctx.signal.aborted) {
        reject(ctx.signal.reason);
        return;
      }
      this.#pending.set(id, { worker: w, op, ctx, resolve, reject });
      ctx.signal.addEventListener('abort', () => {
        w.postMessage({ type: 'cancel', id } satisfies EngineThreadMessage);
        setTimeout(() => {
          if (this.#pending.has(id)) this.#abandon(w, id);
        }, this.#stuckAfterMs).unref();
      }, { once: true });
      w.postMessage({ type: 'call', id, op, request } satisfies EngineThreadMessage);
    });
  }

  backup(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext, point?: PointFields): Promise<BackupOutcome> {
    return this.#call('backup', { source, disks: disks.map((d) => ({ ...d })), ...(point ? { point: { ...point } } : {}) }, ctx);
  }

  check(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext): Promise<BackupOutcome> {
    return this.#call('check', { source, disks: disks.map((d) => ({ ...d })) }, ctx);
  }

  attachAgents(rpc: AgentRpc): void {
    this.#agents = rpc;
  }

  restore(req: RestoreRequest, ctx: EngineContext): Promise<RestoreOutcome> {
    return this.#call('restore', { ...req }, ctx);
  }

  verify(ctx: EngineContext): Promise<VerifyOutcome> {
    return this.#call('verify', {}, ctx);
  }

  prune(source: string, pointIds: readonly string[], ctx: EngineContext): Promise<PruneOutcome> {
    return this.#call('prune', { source, pointIds: [...pointIds] }, ctx);
  }

  gc(ctx: EngineContext, full = false): Promise<Record<string, unknown>> {
    return this.#call('gc', { full }, ctx);
  }

  repair(ctx: EngineContext, dryRun = false): Promise<Record<string, unknown>> {
    return this.#call('repair', { dryRun }, ctx);
  }

  listPoints(source: string | undefined): Promise<EnginePoint[]> {
    return this.local.listPoints(source);
  }

  exportImage(req: { source: string; pointId: string; disk: number; format: ImageFormat }, signal: AbortSignal): Promise<ImageExport> {
    return this.local.exportImage(req, signal);
  }

  readConfiguration(req: { source: string; pointId: string }): Promise<VmConfiguration> {
    return this.local.readConfiguration(req);
  }

  stats(): Promise<StoreStats> {
    return this.local.stats();
  }

  poolStats(): { utilization: number; queueDepth: number; threads: number } {
    return this.#pool;
  }

  /** Stop the engine thread (after the queue has stopped its jobs). */
  async close(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    this.#worker = undefined;
    const exited = new Promise<boolean>((r) => w.once('exit', () => r(true)));
    w.postMessage({ type: 'close' } satisfies EngineThreadMessage);
    // terminate() itself waits for system calls in flight: past the grace, give the thread up
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => {
      void w.terminate().catch(() => undefined);
      setTimeout(() => r(false), this.#stuckAfterMs).unref();
    }, this.#stuckAfterMs)));
    if (!(await Promise.race([exited, late]))) {
      this.#abandoned += 1;
      w.unref();
    }
    clearTimeout(timer);
  }
}
