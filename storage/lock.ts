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

  private constructor(path: string, holder: LockHolder) {
    this.path = path;
    this.holder = holder;
  }

  /**
   * Take the lock at `path` for `operation`; waits up to `waitMs` (polling) while a live holder has it, then
   * throws SV_ERR_STORE_LOCKED naming the holder. `what` names the locked thing in the message.
   */
  static async acquire(path: string, operation: string, what: string, waitMs = 0): Promise<LockFile> {
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
    }
  }
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
