/**
 * The engine thread: a worker thread that runs the sync engine's long operations (backup, check, restore,
 * verify, prune, gc, repair) for threaded.ts, so their main-thread work (planning, dispatch to the worker
 * pool, commits) never delays the API's event loop. It owns its own worker pool (src/pool) and reports the
 * pool's figures every second. Messages and operations: protocol.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SvError, toWire } from '../../errors/index.js';
import { closePool, poolStats } from '../../pool/index.js';
import type { EngineContext } from './index.js';
import { SyncEngine } from './sync.js';
import type { CallMessage, EngineThreadData, EngineThreadMessage, EngineThreadReply, OpName, OpRequest, OpResult, ResultReply } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('engine/thread.js must run as a worker thread');
const data: EngineThreadData = workerData;
const engine = new SyncEngine(data.storeDir, data.stateDir);
/** Late disk source openers (e.g. `agent`): registered by importing their modules, before any operation runs. */
const openersReady = Promise.all((data.openerModules ?? []).map((m) => import(m)));
openersReady.catch(() => undefined); // reported by each call that waits for it
const running = new Map<number, AbortController>();
const post = (m: EngineThreadReply): void => port.postMessage(m);

const stats = setInterval(() => {
  const s = poolStats();
  post({ type: 'pool', utilization: s.utilization, queueDepth: s.queueSize, threads: s.threads });
}, 1000);
stats.unref();

/** How each operation runs on the SyncEngine: one entry per OpMap entry (the type makes it exhaustive). */
type Ops = { [K in OpName]: (engine: SyncEngine, request: OpRequest<K>, ctx: EngineContext) => Promise<OpResult<K>> };
const OPS: Ops = {
  backup: (e, r, ctx) => e.backup(r.source, r.disks, ctx, r.point),
  check: (e, r, ctx) => e.check(r.source, r.disks, ctx),
  restore: (e, r, ctx) => e.restore(r, ctx),
  verify: (e, _r, ctx) => e.verify(ctx),
  prune: (e, r, ctx) => e.prune(r.source, r.pointIds, ctx),
  gc: (e, r, ctx) => e.gc(ctx, r.full),
  repair: (e, r, ctx) => e.repair(ctx, r.dryRun),
};

async function call<K extends OpName>(m: CallMessage<K>, ctx: EngineContext): Promise<ResultReply<K>> {
  const run: Ops[K] = OPS[m.op];
  if (typeof run !== 'function') throw new SvError('SV_ERR_CORE_INTERNAL', `engine thread: unknown operation ${String(m.op)} (call ${m.id})`, {});
  await openersReady;
  return { type: 'result', id: m.id, op: m.op, value: await run(engine, m.request, ctx) };
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
  call(m, ctx).then(
    (reply) => post(reply),
    (err: unknown) => post({ type: 'error', id: m.id, error: toWire(err) }),
  ).finally(() => running.delete(m.id));
});
