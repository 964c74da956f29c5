/**
 * The typed protocol between ThreadedEngine (threaded.ts, the appliance's main thread) and the engine thread
 * (thread.ts), in the style of workers/tasks.ts.
 *
 * ADDING AN OPERATION the engine thread runs (after the Engine method in index.ts and SyncEngine's in sync.ts):
 *   1. here, one entry in `OpMap`:       `scrub: { request: { deep: boolean }; result: ScrubOutcome };`
 *   2. the compiler then asks for its line in thread.ts's `OPS` table (`scrub: (e, r, ctx) => e.scrub(ctx, r.deep)`)
 *      and, through `implements Engine`, for ThreadedEngine's one-line method (`this.#call('scrub', { deep }, ctx)`).
 *
 * Messages: `call` {id, op, request} → any number of `progress` / `log` {id} → exactly one `result` {id, op,
 * value} or `error` {id, error: WireError} (rebuilt with fromWire); `cancel` {id} aborts the call's signal (the
 * call still answers, with its error, once the engine has stopped); `close` ends the thread. The thread also
 * sends `pool` (its worker pool's figures) every second. Requests and results cross by structured clone: plain
 * JSON-able objects (the Engine contract requires JSON-able results).
 */
import type { MessagePort } from 'node:worker_threads';
import type { WireError } from '../../errors/index.js';
import type { BackupOutcome, EngineDiskRef, PointFields, PruneOutcome, RestoreOutcome, RestoreRequest, VerifyOutcome } from './index.js';

/** The thread's workerData. */
export interface EngineThreadData {
  readonly storeDir: string;
  /** Local state folder of a store on object storage. */
  readonly stateDir?: string;
  /** Modules imported before the first operation: each registers a disk source opener (src/sources/registry.ts). */
  readonly openerModules?: readonly string[];
  /** The engine thread's end of the agent relay (src/sources/agent-relay.ts), when the appliance has agents. */
  readonly agentPort?: MessagePort;
}

/** `backup` and `check`: the disks of one source, as serialisable references (opened in the thread). */
export interface SourceDisksRequest {
  readonly source: string;
  readonly disks: readonly EngineDiskRef[];
  /** backup: how the point in time was taken (consistency, reasons, pause/freeze). */
  readonly point?: PointFields;
}

/** Every operation of the engine thread: name → request and result types. */
export interface OpMap {
  backup: { request: SourceDisksRequest; result: BackupOutcome };
  check: { request: SourceDisksRequest; result: BackupOutcome };
  restore: { request: RestoreRequest; result: RestoreOutcome };
  verify: { request: Record<string, never>; result: VerifyOutcome };
  prune: { request: { readonly source: string; readonly pointIds: readonly string[] }; result: PruneOutcome };
  gc: { request: { readonly full: boolean }; result: Record<string, unknown> };
  repair: { request: { readonly dryRun: boolean }; result: Record<string, unknown> };
}

export type OpName = keyof OpMap;
export type OpRequest<K extends OpName> = OpMap[K]['request'];
export type OpResult<K extends OpName> = OpMap[K]['result'];

/** A `call` of operation K. */
export interface CallMessage<K extends OpName = OpName> {
  type: 'call';
  id: number;
  op: K;
  request: OpRequest<K>;
}

/** The `result` of a call of operation K. */
export interface ResultReply<K extends OpName = OpName> {
  type: 'result';
  id: number;
  op: K;
  value: OpResult<K>;
}

export type EngineThreadMessage = CallMessage | { type: 'cancel'; id: number } | { type: 'close' };

export type EngineThreadReply =
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'log'; id: number; message: string }
  | ResultReply
  | { type: 'error'; id: number; error: WireError }
  | { type: 'pool'; utilization: number; queueDepth: number; threads: number };
