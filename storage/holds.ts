/**
 * Holds: leases that keep a recovery point alive while something reads it (a browse, an NBD export, an item
 * restore). Prune skips a held point (and says so); gc keeps its blocks because the point keeps its manifest.
 *
 * Layout: `<store>/holds/<source>/<point id>.<holder id>.json`, one file per holder, written whole (atomicWrite):
 *   {source, point, holder, operation, pid, host, boot, since, expiresAt}
 * `expiresAt` (ms since the epoch) is pushed forward by the holder's renewal timer (every ttl/3, unref'd) and the
 * file removed by `release()`. A hold counts while it has not expired and its holder is alive (a holder on this
 * host and boot whose pid is gone is dead at once; another host's holder counts until its lease expires). A hold
 * that does not count is ignored and its file removed by whoever lists holds; a file that cannot be parsed
 * counts as expired.
 *
 * Race with prune: taking a hold and prune's "read the holds, delete manifests" both run under the short lock
 * `locks/holds-<source>.lock`, and a hold is only granted once its file is durable AND the manifest still exists
 * (checked under that lock). So prune either sees the hold, or the hold is refused with
 * SV_ERR_STORE_POINT_NOT_FOUND; a granted hold's point always has its manifest, which makes it a live root for
 * gc with no change to gc. What locks what: holds-<source> is taken alone or inside source-<name> (prune), never
 * the other way round, so there is no lock-order cycle.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SvError, wrapSystemError } from '../src/errors/index.js';
import { atomicWrite, isMissing, isTempName, listDir, readStoreFile, removeFile } from './fsutil.js';
import { bootId, holderAlive, LockFile } from './lock.js';
import { POINT_ID_RE } from './layout.js';
import { checkSourceName, type Store } from './store.js';

/** Default lease: a holder that stops renewing (killed on another host, suspended) loses its hold after this. */
export const DEFAULT_HOLD_TTL_MS = 60_000;
/** How long taking a hold or pruning waits for the other to leave the holds lock. */
const HOLDS_LOCK_WAIT_MS = 30_000;

export interface HoldRecord {
  readonly source: string;
  readonly point: string;
  /** Random id of this holder (a process may hold a point several times). */
  readonly holder: string;
  /** What holds it: "browse", "export", "files get", ... */
  readonly operation: string;
  readonly pid: number;
  readonly host: string;
  readonly boot: string;
  /** ISO time the hold was taken. */
  readonly since: string;
  /** Milliseconds since the epoch after which the hold no longer counts. */
  readonly expiresAt: number;
}

export interface TakeHoldOptions {
  readonly operation: string;
  /** Lease length (default DEFAULT_HOLD_TTL_MS); renewed every ttl/3 while held. */
  readonly ttlMs?: number;
  /** Called when a renewal fails (the hold may lapse): the holder decides whether to carry on. */
  readonly onRenewError?: (err: unknown) => void;
}

function holdsDir(store: Store, source: string): string {
  checkSourceName(source);
  return join(store.dir, 'holds', source);
}

function holdsLock(store: Store, source: string): Promise<LockFile> {
  return LockFile.acquire(join(store.locksDir, `holds-${source}.lock`), 'holds', `holds of data source "${source}"`, HOLDS_LOCK_WAIT_MS);
}

/** A hold this process owns. `release()` is idempotent. */
export class Hold {
  readonly record: HoldRecord;
  readonly path: string;
  readonly #store: Store;
  readonly #ttlMs: number;
  #expiresAt: number;
  #timer: NodeJS.Timeout | undefined;
  #released = false;
  #renewing: Promise<void> = Promise.resolve();

  constructor(store: Store, record: HoldRecord, path: string, ttlMs: number, onRenewError?: (err: unknown) => void) {
    this.#store = store;
    this.record = record;
    this.path = path;
    this.#ttlMs = ttlMs;
    this.#expiresAt = record.expiresAt;
    this.#timer = setInterval(() => {
      this.#renewing = this.renew().catch((err: unknown) => (onRenewError ? onRenewError(err) : store.warn(`hold ${path}: renewal failed: ${(err as Error).message}`)));
    }, Math.max(50, Math.floor(ttlMs / 3)));
    this.#timer.unref();
  }

  get expiresAt(): number { return this.#expiresAt; }
  get released(): boolean { return this.#released; }

  /** Push the expiry forward. A hold whose file vanished (it lapsed and was cleaned) is granted again only if the point still exists. */
  async renew(): Promise<void> {
    if (this.#released) return;
    const expiresAt = Date.now() + this.#ttlMs;
    const present = await readStoreFile(this.path).then(() => true, (err: unknown) => (isMissing(err) ? false : Promise.reject(err)));
    if (present) {
      await atomicWrite(this.path, JSON.stringify({ ...this.record, expiresAt }));
    } else {
      const lock = await holdsLock(this.#store, this.record.source);
      try {
        if (this.#released) return;
        await this.#store.readPoint(this.record.source, this.record.point); // pruned while lapsed: SV_ERR_STORE_POINT_NOT_FOUND
        await atomicWrite(this.path, JSON.stringify({ ...this.record, expiresAt }));
      } finally {
        await lock.release();
      }
    }
    if (this.#released) await removeFile(this.path);
    else this.#expiresAt = expiresAt;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearInterval(this.#timer);
    await this.#renewing;
    await removeFile(this.path).catch(() => false);
  }
}

/**
 * Hold `source@point` (an exact point id). Throws SV_ERR_STORE_POINT_NOT_FOUND when the point does not exist
 * (or was pruned just before the hold was granted); SV_ERR_STORE_LOCKED when a prune keeps the holds lock for
 * longer than 30 s.
 */
export async function takeHold(store: Store, source: string, point: string, opts: TakeHoldOptions): Promise<Hold> {
  if (!POINT_ID_RE.test(point)) throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `data source "${source}": ${JSON.stringify(point)} is not a recovery point id`, { source, point });
  const ttlMs = opts.ttlMs ?? DEFAULT_HOLD_TTL_MS;
  const dir = holdsDir(store, source);
  await mkdir(dir, { recursive: true }).catch((err: unknown) => { throw wrapSystemError(err, `create ${dir}`); });
  const holder = randomBytes(8).toString('hex');
  const record: HoldRecord = {
    source, point, holder, operation: opts.operation, pid: process.pid, host: hostname(), boot: bootId(), since: new Date().toISOString(), expiresAt: Date.now() + ttlMs,
  };
  const path = join(dir, `${point}.${holder}.json`);
  const lock = await holdsLock(store, source);
  try {
    await atomicWrite(path, JSON.stringify(record));
    try {
      await store.readPoint(source, point);
    } catch (err) {
      await removeFile(path);
      throw err;
    }
  } finally {
    await lock.release();
  }
  return new Hold(store, record, path, ttlMs, opts.onRenewError);
}

function parseHold(text: string): HoldRecord | undefined {
  try {
    const v = JSON.parse(text) as Partial<HoldRecord>;
    if (typeof v.point === 'string' && typeof v.holder === 'string' && typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.expiresAt === 'number') {
      return {
        source: String(v.source ?? ''), point: v.point, holder: v.holder, operation: String(v.operation ?? ''), pid: v.pid, host: v.host,
        boot: String(v.boot ?? 'unknown'), since: String(v.since ?? ''), expiresAt: v.expiresAt,
      };
    }
  } catch {
    /* unreadable: expired */
  }
  return undefined;
}

/** Does this hold still count (not expired, holder alive)? */
export function holdCounts(h: HoldRecord, now = Date.now()): boolean {
  return h.expiresAt > now && holderAlive({ pid: h.pid, host: h.host, boot: h.boot, operation: h.operation, since: h.since });
}

/**
 * The holds of a source that count, by point id. Expired holds, holds of dead holders and unreadable files are
 * removed (a temp file is left to its writer).
 */
export async function listHolds(store: Store, source: string, now = Date.now()): Promise<Map<string, HoldRecord[]>> {
  const dir = holdsDir(store, source);
  const out = new Map<string, HoldRecord[]>();
  for (const name of await listDir(dir)) {
    if (isTempName(name) || !name.endsWith('.json')) continue;
    const path = join(dir, name);
    let rec: HoldRecord | undefined;
    try {
      rec = parseHold((await readStoreFile(path)).toString('utf8'));
    } catch (err) {
      if (isMissing(err)) continue; // released meanwhile
    }
    if (!rec || !holdCounts(rec, now) || name !== `${rec.point}.${rec.holder}.json`) {
      await removeFile(path).catch(() => false);
      continue;
    }
    const list = out.get(rec.point) ?? [];
    list.push(rec);
    out.set(rec.point, list);
  }
  return out;
}

/** Run `fn` with the holds of `source` frozen: no hold is granted meanwhile (prune's delete step). */
export async function withHoldsFrozen<T>(store: Store, source: string, fn: (held: Map<string, HoldRecord[]>) => Promise<T>): Promise<T> {
  const lock = await holdsLock(store, source);
  try {
    return await fn(await listHolds(store, source));
  } finally {
    await lock.release();
  }
}

/** "browse (pid 123 on host, until 12:00:00Z)" for messages. */
export function describeHold(h: HoldRecord): string {
  return `${h.operation || 'a reader'} (pid ${h.pid} on ${h.host}, until ${new Date(h.expiresAt).toISOString()})`;
}
