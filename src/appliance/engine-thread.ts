/**
 * The engine thread: a worker thread that runs the sync engine's long operations (backup, check, restore,
 * verify, prune, gc) for engine-threaded.ts, so their main-thread work (planning, dispatch to the worker
 * pool, commits) never delays the API's event loop. It owns its own worker pool (src/pool) and reports the
 * pool's figures every second.
 *
 * Protocol (typed in EngineThreadMessage / EngineThreadReply): `call` {id, op, args} → any number of
 * `progress` / `log` {id} → exactly one `result` {id, value} or `error` {id, error: WireError}; `cancel` {id}
 * aborts the call's signal (the call still answers, with its error, once the engine has stopped).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SvError, toWire } from '../errors/index.js';
import { closePool, poolStats } from '../pool/index.js';
import type { EngineContext } from './engine.js';
import { SyncEngine } from './engine-sync.js';
import type { EngineThreadMessage, EngineThreadReply, ThreadOp } from './engine-thread-protocol.js';

const port = parentPort;
if (!port) throw new Error('engine-thread.js must run as a worker thread');
const engine = new SyncEngine((workerData as { storeDir: string }).storeDir);
const running = new Map<number, AbortController>();
const post = (m: EngineThreadReply): void => port.postMessage(m);

const stats = setInterval(() => {
  const s = poolStats();
  post({ type: 'pool', utilization: s.utilization, queueDepth: s.queueSize, threads: s.threads });
}, 1000);
stats.unref();

async function call(id: number, op: ThreadOp, args: unknown[], ctx: EngineContext): Promise<unknown> {
  switch (op) {
    case 'backup':
      return engine.backup(args[0] as string, args[1] as Parameters<SyncEngine['backup']>[1], ctx, args[2] as string[] | undefined);
    case 'check':
      return engine.check(args[0] as string, args[1] as Parameters<SyncEngine['check']>[1], ctx, args[2] as string[] | undefined);
    case 'restore':
      return engine.restore(args[0] as Parameters<SyncEngine['restore']>[0], ctx);
    case 'verify':
      return engine.verify(ctx);
    case 'prune':
      return engine.prune(args[0] as string, args[1] as string[], ctx);
    case 'gc':
      return engine.gc(ctx, args[0] === true);
    case 'repair':
      return engine.repair(ctx, args[0] === true);
    default: {
      const never: never = op;
      throw new SvError('SV_ERR_CORE_INTERNAL', `engine thread: unknown operation ${String(never)} (call ${id})`, {});
    }
  }
}

port.on('message', (m: EngineThreadMessage) => {
  if (m.type === 'cancel') {
    running.get(m.id)?.abort(new SvError('SV_ERR_CORE_CANCELLED', 'cancelled', {}));
    return;
  }
  if (m.type === 'close') {
    clearInterval(stats);
    void closePool().finally(() => port.close());
    return;
  }
  const abort = new AbortController();
  running.set(m.id, abort);
  let lastProgress = 0;
  const ctx: EngineContext = {
    signal: abort.signal,
    onProgress: (done, total) => {
      const now = Date.now();
      if (now - lastProgress < 100 && done < total) return; // at most ten a second cross threads
      lastProgress = now;
      post({ type: 'progress', id: m.id, done, total });
    },
    log: (message) => post({ type: 'log', id: m.id, message }),
  };
  call(m.id, m.op, m.args, ctx).then(
    (value) => post({ type: 'result', id: m.id, value }),
    (err: unknown) => post({ type: 'error', id: m.id, error: toWire(err) }),
  ).finally(() => running.delete(m.id));
});
