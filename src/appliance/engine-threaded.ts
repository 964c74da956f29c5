/**
 * The Engine used by `serve`: long operations run in a dedicated engine thread (engine-thread.ts) so the API
 * stays responsive during full-speed backups; quick reads (points, stats) and image downloads (streams) run
 * here on a SyncEngine of the same store (the store is safe for concurrent users: see storage/).
 * If the engine thread dies, every pending call fails with SV_ERR_CORE_INTERNAL and the next call starts a
 * new thread.
 */
import { Worker } from 'node:worker_threads';
import { SvError, fromWire } from '../errors/index.js';
import type { BackupOutcome, Engine, EngineContext, EngineDiskRef, EnginePoint, ImageExport, ImageFormat, StoreStats, VerifyOutcome } from './engine.js';
import { SyncEngine } from './engine-sync.js';
import type { EngineThreadMessage, EngineThreadReply, ThreadOp } from './engine-thread-protocol.js';

interface Pending {
  ctx: EngineContext;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class ThreadedEngine implements Engine {
  readonly available = true;
  readonly local: SyncEngine;
  /** The engine thread's worker pool, as last reported (once a second). */
  #pool: { utilization: number; queueDepth: number; threads: number } = { utilization: 0, queueDepth: 0, threads: 0 };
  #storeDir: string;
  #worker: Worker | undefined;
  #pending = new Map<number, Pending>();
  #next = 0;

  constructor(storeDir: string) {
    this.#storeDir = storeDir;
    this.local = new SyncEngine(storeDir);
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL('./engine-thread.js', import.meta.url), { workerData: { storeDir: this.#storeDir } });
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
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        p.reject(new SvError('SV_ERR_CORE_INTERNAL', `the engine thread stopped (${why}) during the operation`, {}));
      }
    };
    w.on('error', (err) => fail(err.message));
    w.on('exit', (code) => fail(`exit code ${code}`));
    this.#worker = w;
    return w;
  }

  #call<T>(op: ThreadOp, args: unknown[], ctx: EngineContext): Promise<T> {
    const id = ++this.#next;
    const w = this.#thread();
    return new Promise<T>((resolve, reject) => {
      if (ctx.signal.aborted) {
        reject(ctx.signal.reason);
        return;
      }
      this.#pending.set(id, { ctx, resolve: resolve as (v: unknown) => void, reject });
      ctx.signal.addEventListener('abort', () => w.postMessage({ type: 'cancel', id } satisfies EngineThreadMessage), { once: true });
      w.postMessage({ type: 'call', id, op, args } satisfies EngineThreadMessage);
    });
  }

  backup(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext, sourceRoots?: readonly string[]): Promise<BackupOutcome> {
    return this.#call('backup', [source, disks.map((d) => ({ ...d })), sourceRoots], ctx);
  }

  check(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext, sourceRoots?: readonly string[]): Promise<BackupOutcome> {
    return this.#call('check', [source, disks.map((d) => ({ ...d })), sourceRoots], ctx);
  }

  restore(req: { source: string; pointId: string; disk?: number; target: string; format: ImageFormat; roots?: readonly string[] }, ctx: EngineContext): Promise<{ bytesWritten: number; files: string[]; raw: Record<string, unknown> }> {
    return this.#call('restore', [{ ...req }], ctx);
  }

  verify(ctx: EngineContext): Promise<VerifyOutcome> {
    return this.#call('verify', [], ctx);
  }

  prune(source: string, pointIds: readonly string[], ctx: EngineContext): Promise<{ removed: string[]; raw: Record<string, unknown> }> {
    return this.#call('prune', [source, [...pointIds]], ctx);
  }

  gc(ctx: EngineContext, full = false): Promise<Record<string, unknown>> {
    return this.#call('gc', [full], ctx);
  }

  repair(ctx: EngineContext, dryRun = false): Promise<Record<string, unknown>> {
    return this.#call('repair', [dryRun], ctx);
  }

  listPoints(source: string | undefined): Promise<EnginePoint[]> {
    return this.local.listPoints(source);
  }

  exportImage(req: { source: string; pointId: string; disk: number; format: ImageFormat }, signal: AbortSignal): Promise<ImageExport> {
    return this.local.exportImage(req, signal);
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
    const exited = new Promise((r) => w.once('exit', r));
    w.postMessage({ type: 'close' } satisfies EngineThreadMessage);
    const timer = setTimeout(() => void w.terminate(), 5000);
    await exited;
    clearTimeout(timer);
  }
}
