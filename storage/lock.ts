/**
 * Lock files that survive kill -9: `<store>/locks/<name>.lock` holds JSON {pid, host, boot, operation, since}.
 * A lock is created complete (temp file + link(2), which fails if the name exists), so a reader never sees a
 * half-written lock. A lock whose holder is gone (pid not alive on this host, or written in another boot of
 * this machine) is stale: the next acquirer moves it aside with rename(2) and takes the name.
 *
 * Locks of the store (what locks what):
 *   source-<name>.lock  backup, consistency check, prune of that data source (one writer per source)
 *   gc.lock             one gc at a time; repair (whole run: no pack disappears while it scans)
 *   commit.lock         short: a backup publishing its index segment + manifest, gc's sweep, bad-list updates,
 *                       repair's rebuild of the index.
 *                       Held for milliseconds to seconds; acquirers wait for it.
 * Backups of different sources, verify, restore, listing never exclude each other.
 *
 * Waiting in one process: acquirers that wait (waitMs > 0) for the same lock file in this process queue up
 * in memory first (one after another, in call order), and only the queue's head polls the file, so a lock
 * released by this process passes to its next waiter at once instead of at that waiter's next poll (eight
 * backups of one appliance committing together waited up to 25 ms at each handover). Other processes still
 * meet through the file alone; a waiter's deadline counts its time in the queue.
 *
 * Limitation: two processes stealing the same stale lock at the same instant could both succeed (each moves the
 * other's fresh lock aside); the window is one rename and only exists after a crash.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { SvError, wrapSystemError } from '../src/errors/index.js';
import { isMissing, readStoreFile } from './fsutil.js';

export interface LockHolder {
  pid: number;
  host: string;
  boot: string;
  operation: string;
  since: string;
}

let bootIdCache: string | undefined;
export function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = 'unknown';
    }
  }
  return bootIdCache;
}

/** Is the process that wrote `holder` still running? (Other hosts are assumed alive.) */
export function holderAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  if (holder.boot !== bootId() && holder.boot !== 'unknown') return false;
  if (holder.pid === process.pid) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.operation === 'string') {
      return { pid: v.pid, host: v.host, boot: String(v.boot ?? 'unknown'), operation: v.operation, since: String(v.since ?? '') };
    }
  } catch {
    /* unreadable: treated as stale below */
  }
  return undefined;
}

export function describeHolder(h: LockHolder): string {
  return `${h.operation} (pid ${h.pid} on ${h.host}, since ${h.since})`;
}

export class LockFile {
  readonly path: string;
  readonly holder: LockHolder;
  #released = false;
  /** Lets this process's next waiter for the same file go (acquire with waitMs > 0). */
  #leave: (() => void) | undefined;

  private constructor(path: string, holder: LockHolder) {
    this.path = path;
    this.holder = holder;
  }

  /**
   * Take the lock at `path` for `operation`; waits up to `waitMs` (polling) while a live holder has it, then
   * throws SV_ERR_STORE_LOCKED naming the holder. `what` names the locked thing in the message.
   */
  static async acquire(path: string, operation: string, what: string, waitMs = 0): Promise<LockFile> {
    if (waitMs <= 0) return LockFile.#take(path, operation, what, 0);
    const deadline = Date.now() + waitMs;
    const before = queues.get(path);
    let leave!: () => void;
    const mine = new Promise<void>((r) => (leave = r));
    queues.set(path, mine);
    const done = (): void => {
      leave();
      if (queues.get(path) === mine) queues.delete(path);
    };
    try {
      if (before) await untilOrTimeout(before, waitMs);
      const lock = await LockFile.#take(path, operation, what, Math.max(0, deadline - Date.now()));
      lock.#leave = done;
      return lock;
    } catch (err) {
      // the ones queued after this one go when it would have gone: not before the ones queued ahead of it
      void (before ?? Promise.resolve()).then(done);
      throw err;
    }
  }

  static async #take(path: string, operation: string, what: string, waitMs: number): Promise<LockFile> {
    const holder: LockHolder = { pid: process.pid, host: hostname(), boot: bootId(), operation, since: new Date().toISOString() };
    const deadline = Date.now() + waitMs;
    for (;;) {
      const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await writeFile(tmp, JSON.stringify(holder));
        try {
          await link(tmp, path);
          return new LockFile(path, holder);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw wrapSystemError(err, `lock ${path}`);
        }
      } finally {
        await unlink(tmp).catch(() => undefined);
      }
      let current: LockHolder | undefined;
      try {
        // Not a regular file (a FIFO planted there): no holder, so stale (moved aside below), never blocking.
        current = parseHolder((await readStoreFile(path).catch((err: unknown) => (isMissing(err) ? Promise.reject(err) : Buffer.alloc(0)))).toString('utf8'));
      } catch (err) {
        if (isMissing(err)) continue;
        throw wrapSystemError(err, `read lock ${path}`);
      }
      if (!current || !holderAlive(current)) {
        await rename(path, `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`).catch(() => undefined);
        await unlinkStale(path);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new SvError('SV_ERR_STORE_LOCKED', `${what} is locked by ${describeHolder(current)}; lock file ${path}`, {
          path, holder: { ...current },
        });
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      const text = (await readStoreFile(this.path)).toString('utf8');
      const h = parseHolder(text);
      if (h && h.pid === this.holder.pid && h.since === this.holder.since) await unlink(this.path);
    } catch {
      /* already gone */
    } finally {
      this.#leave?.();
    }
  }
}

/** Per lock file: settles when the last waiting acquirer of this process queued for it has released it or given up. */
const queues = new Map<string, Promise<void>>();

/** Wait for `p`, at most `ms`. */
async function untilOrTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

async function unlinkStale(path: string): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  const { dirname, basename, join } = await import('node:path');
  const dir = dirname(path);
  const prefix = `${basename(path)}.stale-`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await unlink(join(dir, name)).catch(() => undefined);
  }
}
