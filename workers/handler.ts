/**
 * Worker-side plumbing: `handler(name, body)` turns a typed task body into the function piscina calls,
 * catching every error as a WireError `{code, message, details}` and moving (not copying) the buffers the
 * body lists with `moved(value, transfer)`.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { hasCode, SvError, toWire, type WireError } from '../src/errors/index.js';
import type { TaskName, TaskOutcome, TaskRequest, TaskResult } from './tasks.js';

const MOVED = Symbol('moved');

/** A result plus the ArrayBuffers to transfer back with it. */
export interface Moved<R> {
  readonly [MOVED]: true;
  readonly value: R;
  readonly transfer: readonly ArrayBuffer[];
}

/** Return this from a task body to transfer `transfer` back to the main thread instead of copying. */
export function moved<R>(value: R, transfer: readonly ArrayBuffer[]): Moved<R> {
  return { [MOVED]: true, value, transfer };
}

function isMoved<R>(x: R | Moved<R>): x is Moved<R> {
  return typeof x === 'object' && x !== null && MOVED in x;
}

/**
 * A thrown value as a WireError: catalogued errors keep their code (and OS errors their classification);
 * anything else (a bug: TypeError, plain Error) becomes SV_ERR_POOL_WORKER_FAILED with the worker's stack.
 */
function errorOf(name: string, err: unknown): WireError {
  const wire = toWire(err);
  if (!(err instanceof SvError) && hasCode(wire, 'SV_ERR_CORE_INTERNAL')) {
    const stack = err instanceof Error ? err.stack ?? null : null;
    return { code: 'SV_ERR_POOL_WORKER_FAILED', message: `worker task "${name}" threw: ${wire.message}`, details: { task: name, stack } };
  }
  return { ...wire, details: { ...wire.details, task: name } };
}

type Body<K extends TaskName> = (request: TaskRequest<K>) => TaskResult<K> | Moved<TaskResult<K>> | Promise<TaskResult<K> | Moved<TaskResult<K>>>;

/** The exported worker function for task `name`. */
export function handler<K extends TaskName>(name: K, body: Body<K>): (request: TaskRequest<K>) => Promise<unknown> {
  const run = async (request: TaskRequest<K>): Promise<unknown> => {
    let outcome: TaskOutcome<TaskResult<K>>;
    let transfer: readonly ArrayBuffer[] = [];
    try {
      const result = await body(request);
      if (isMoved(result)) {
        outcome = { ok: true, value: result.value };
        transfer = [...new Set(result.transfer)];
      } else {
        outcome = { ok: true, value: result };
      }
    } catch (err) {
      outcome = { ok: false, error: errorOf(name, err) };
    }
    if (transfer.length === 0) return outcome;
    return move({ [transferableSymbol]: [...transfer], [valueSymbol]: outcome });
  };
  Object.defineProperty(run, 'name', { value: `task:${name}` });
  return run;
}
