/**
 * The process-wide worker pool: one piscina pool sized to the cores (os.availableParallelism(), or
 * SHADOWVAULT_WORKERS when set), shared by every job (backup, restore, verify, benchmarks).
 *
 * Workers run the COMPILED module build/workers/index.js (resolved from this compiled file), never a .ts
 * file under a loader. Tasks are typed by TaskMap (workers/tasks.ts). A task's error comes back as
 * `{code, message, details}` and is rethrown here as an SvError with the same code; piscina-level failures
 * become SV_ERR_POOL_UNKNOWN_TASK (no such export), SV_ERR_POOL_CLOSED (pool shut down with the task
 * queued), SV_ERR_CORE_CANCELLED (aborted) or SV_ERR_POOL_WORKER_FAILED (the thread died).
 *
 * piscina itself is loaded on the first getPool(), not when this module is imported: a CLI process that never
 * decodes in a worker (`files ls` reads its few blocks on the main thread) does not pay for loading it.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Piscina } from 'piscina';
import { fromWire, SvError } from '../errors/index.js';
import type { TaskName, TaskOutcome, TaskRequest, TaskResult } from '../../workers/tasks.js';

/** build/src/pool/index.js → build/workers/index.js */
export const WORKER_FILE = fileURLToPath(new URL('../../workers/index.js', import.meta.url));

let pool: Piscina | undefined;
const requireHere = createRequire(import.meta.url);
let closing: Promise<void> | undefined;

/** Threads the pool runs: SHADOWVAULT_WORKERS when it is a positive integer, else the usable cores. */
export function poolSize(): number {
  const env = Number(process.env.SHADOWVAULT_WORKERS);
  return Number.isInteger(env) && env > 0 ? env : availableParallelism();
}

/** The process-wide pool, created on first use (one thread; more start as tasks queue). */
export function getPool(): Piscina {
  if (!pool) {
    const threads = poolSize();
    const { Piscina: PiscinaClass } = requireHere('piscina') as typeof import('piscina');
    pool = new PiscinaClass({
      filename: WORKER_FILE,
      // One thread at first, more as tasks queue (up to `threads`): a CLI process that decodes one file of a few
      // MiB does not pay for starting every thread (each costs ~0.1 CPU-s: loading the worker's modules).
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: 60_000,
      // Async atomics: handlers may do I/O, and an idle worker keeps servicing its event loop.
      atomics: 'async',
    });
    // piscina emits 'error' when a worker answers a task that was aborted meanwhile ("Unexpected message from
    // Worker"): the answer is stale and the task already rejected with SV_ERR_CORE_CANCELLED. Without a listener
    // the EventEmitter throws it as an uncaught exception and takes the whole process (the appliance) down.
    pool.on('error', (err: unknown) => {
      const text = err instanceof Error ? err.message : String(err);
      if (!/^Unexpected message from Worker/.test(text)) process.emitWarning(`worker pool: ${text}`, 'ShadowvaultPoolWarning');
    });
  }
  return pool;
}

/** Shut the pool down (waits for running tasks); the next getPool() starts a new one. */
export async function closePool(): Promise<void> {
  const current = pool;
  pool = undefined;
  if (!current) return closing;
  closing = current.close();
  await closing;
}

export interface RunOptions {
  /** ArrayBuffers of the request to move to the worker (they are detached here). */
  readonly transfer?: readonly ArrayBuffer[];
  readonly signal?: AbortSignal;
}

function poolFailure(name: string, err: unknown): SvError {
  const message = err instanceof Error ? err.message : String(err);
  const cause = { cause: err };
  if (/No handler function exported/.test(message)) {
    return new SvError('SV_ERR_POOL_UNKNOWN_TASK', `no worker task "${name}" in ${WORKER_FILE}`, { task: name }, cause);
  }
  if ((err as { name?: string } | null)?.name === 'AbortError') {
    return new SvError('SV_ERR_CORE_CANCELLED', `worker task "${name}" was cancelled`, { task: name }, cause);
  }
  if (/Terminating worker thread|closed|destroy/i.test(message)) {
    return new SvError('SV_ERR_POOL_CLOSED', `worker task "${name}" could not run: the pool was shut down (${message})`, { task: name }, cause);
  }
  return new SvError('SV_ERR_POOL_WORKER_FAILED', `worker task "${name}" failed: ${message}`, { task: name }, cause);
}

/** Run task `name` on the pool; resolves to its typed result or rejects with an SvError. */
export async function runTask<K extends TaskName>(name: K, request: TaskRequest<K>, options: RunOptions = {}): Promise<TaskResult<K>> {
  let outcome: TaskOutcome<TaskResult<K>>;
  try {
    outcome = (await getPool().run(request, { name, transferList: options.transfer ? [...options.transfer] : undefined, signal: options.signal ?? null })) as TaskOutcome<
      TaskResult<K>
    >;
  } catch (err) {
    throw poolFailure(name, err);
  }
  if (!outcome.ok) throw fromWire(outcome.error);
  return outcome.value;
}

export interface PoolStats {
  /** Threads the pool runs now / at most. */
  readonly threads: number;
  readonly maxThreads: number;
  /** Tasks waiting for a thread. */
  readonly queueSize: number;
  /** Fraction of time threads were busy since the pool started (0..1, piscina's estimate). */
  readonly utilization: number;
  /** Tasks finished since the pool started. */
  readonly completed: number;
}

/** Numbers for metrics; zeros when the pool has not been started. */
export function poolStats(): PoolStats {
  if (!pool) return { threads: 0, maxThreads: poolSize(), queueSize: 0, utilization: 0, completed: 0 };
  return {
    threads: pool.threads.length,
    maxThreads: pool.maxThreads,
    queueSize: pool.queueSize,
    utilization: pool.utilization,
    completed: pool.completed,
  };
}
