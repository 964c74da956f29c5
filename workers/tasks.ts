/**
 * The typed protocol between the main thread and the worker pool (src/pool/).
 *
 * ADDING A TASK is a two-line change:
 *   1. here, one entry in `TaskMap`:          `verify: { request: VerifyRequest; result: VerifyResult };`
 *   2. in workers/index.ts, one export:       `export const verify = handler('verify', verifyBlocks);`
 * (the request/result types and the body live in your own module, e.g. workers/verify.ts). Then call it with
 * `runTask('verify', request, { transfer })` from src/pool/index.ts.
 *
 * Rules:
 * - Requests and results cross by structured clone. Big buffers must NOT be copied: put them in an
 *   ArrayBuffer you give up (`transfer` on the main side; `moved(value, [buffers])` in the worker) or in a
 *   SharedArrayBuffer. Buffer/Uint8Array come back as plain Uint8Array; rebuild Buffer views if needed.
 * - Never transfer the ArrayBuffer under a small Buffer (Buffer.from / allocUnsafe use a shared 8 KiB slab).
 * - A handler's errors never cross as thrown objects (that loses `code`): `handler()` catches everything and
 *   returns `{ ok: false, error: { code, message, details } }`; the pool rebuilds an SvError with that code.
 */
import type { WireError } from '../src/errors/index.js';
import type { BackupRangeRequest, BackupRangeResult, BackupSpansRequest, BackupSpansResult, ReadBlobsRequest, ReadBlobsResult } from './store-task.js';

/** `pack`: packBlocks over bytes `[byteOffset, byteOffset + byteLength)` of `data` in a worker. */
export interface PackRequest {
  /** Transferred (ArrayBuffer) or shared (SharedArrayBuffer). */
  readonly data: ArrayBuffer | SharedArrayBuffer;
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly blockSize: number;
  readonly level: number;
}

/** The addon's packBlocks result (offsets/digests/flags share one transferred ArrayBuffer, payload another). */
export interface PackResult {
  readonly count: number;
  readonly offsets: Uint32Array;
  readonly digests: Uint8Array;
  readonly flags: Uint8Array;
  readonly payload: Uint8Array;
}

/** `echo`: a diagnostic task (pool tests, health checks): returns its input, or fails with a given code. */
export interface EchoRequest {
  readonly value: unknown;
  /** When set, the worker throws an SvError with this code (tests error crossing). */
  readonly failWith?: { readonly code: string; readonly message: string; readonly details?: Record<string, unknown> };
  /** When set, the worker throws a plain Error (not catalogued) with this message. */
  readonly throwPlain?: string;
}
export interface EchoResult {
  readonly value: unknown;
  readonly threadId: number;
}

/** Every task: name → request and result types. */
export interface TaskMap {
  pack: { request: PackRequest; result: PackResult };
  echo: { request: EchoRequest; result: EchoResult };
  storeBackupRange: { request: BackupRangeRequest; result: BackupRangeResult };
  storeBackupSpans: { request: BackupSpansRequest; result: BackupSpansResult };
  storeReadBlobs: { request: ReadBlobsRequest; result: ReadBlobsResult };
}

export type TaskName = keyof TaskMap;
export type TaskRequest<K extends TaskName> = TaskMap[K]['request'];
export type TaskResult<K extends TaskName> = TaskMap[K]['result'];

/** What a worker sends back for every task. */
export type TaskOutcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: WireError };
