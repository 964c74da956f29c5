/**
 * kill -9 of a CLI child at a moment inside its work, chosen by what the child has done rather than by a clock
 * started with the process: node's start and the store's open take most of a short command's time, and a
 * sleep from the spawn lands there (or after the end) as often as in the work.
 * - A `Moment` is a probe of the child's progress, polled every 5 ms from the spawn: it holds a lock file of the
 *   store's local state (its holder pid is the child's: the store is open and the command's work has begun),
 *   or anything the caller asks (a new pack or an incomplete multipart upload listed by the gateway).
 * - cliChild() runs the CLI as a child (without tap's loader hook: nodeCommand) and, once the moment holds,
 *   kills it with SIGKILL after `delayMs`; without a delay it runs to its end, and reports when the moment was
 *   first seen, so a test can measure the length of the work once and then kill at random parts of it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { childEnv, CLI, nodeCommand } from './env.js';

/** True once the child (its pid) has reached the moment. */
export type Moment = (pid: number) => boolean | Promise<boolean>;

/** The child holds the lock file at `path` (store/lock.ts: JSON with the holder's pid). */
export function holdsLock(path: string): Moment {
  return (pid) => {
    try {
      return (JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown }).pid === pid;
    } catch {
      return false; // not there yet, or being written
    }
  };
}

/** Both moments, in order: `then` is asked only once `first` holds (an expensive probe after a cheap one). */
export function after(first: Moment, then: Moment): Moment {
  let reached = false;
  return async (pid) => (reached ||= await first(pid)) && then(pid);
}

export interface ChildRun {
  readonly pid: number;
  /** Exit code; null when it was killed. */
  readonly code: number | null;
  readonly stderr: string;
  /** Milliseconds from the spawn to the moment first seen; undefined when it was not seen. */
  readonly momentMs: number | undefined;
  /** Milliseconds from the spawn to the exit. */
  readonly totalMs: number;
}

/**
 * Run `shadowvault ARGS` as a child. With `moment` and `delayMs`: SIGKILL it `delayMs` after the moment is first
 * seen (it may end before: then `code` is its exit code). With `moment` alone it runs to its end and `momentMs`
 * says when the moment came.
 */
export function cliChild(args: string[], moment?: Moment, delayMs?: number, env: NodeJS.ProcessEnv = {}): Promise<ChildRun> {
  const t0 = Date.now();
  const child = spawn(...nodeCommand([CLI, ...args]), { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv({ SHADOWVAULT_WORKERS: '2', ...env }) });
  const pid = child.pid ?? 0;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let done = false;
  let momentMs: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      done = true;
      clearTimeout(timer);
      resolve(code);
    });
  });
  const watch = async (): Promise<void> => {
    if (!moment) return;
    while (!done) {
      if (await moment(pid)) {
        momentMs = Date.now() - t0;
        if (delayMs !== undefined && !done) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
        return;
      }
      await sleep(5);
    }
  };
  return Promise.all([closed, watch()]).then(([code]) => ({ pid, code, stderr, momentMs, totalMs: Date.now() - t0 }));
}

/**
 * The length of a command's work: run it to its end (it must succeed) and return the milliseconds from
 * `moment` to its exit (the whole run when the moment passed between two polls).
 */
export async function workMs(args: string[], moment: Moment): Promise<number> {
  const r = await cliChild(args, moment);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.totalMs - (r.momentMs ?? 0);
}
