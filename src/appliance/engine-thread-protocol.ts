/** Messages between engine-threaded.ts (the appliance's main thread) and engine-thread.ts (the worker). */
import type { WireError } from '../errors/index.js';

export type ThreadOp = 'backup' | 'check' | 'restore' | 'verify' | 'prune' | 'gc' | 'repair';

export type EngineThreadMessage =
  | { type: 'call'; id: number; op: ThreadOp; args: unknown[] }
  | { type: 'cancel'; id: number }
  | { type: 'close' };

export type EngineThreadReply =
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'log'; id: number; message: string }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: WireError }
  | { type: 'pool'; utilization: number; queueDepth: number; threads: number };
