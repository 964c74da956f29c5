/**
 * The volume store: one folder holding the blobs, index, manifests and settings of any number of data
 * sources (layout in layout.ts and docs/STORE.md). This class is the narrow entry point: it opens or creates
 * the folder, reads settings and manifests (checked), and hands out locks. Blob I/O is in blobs.ts, gc in gc.ts.
 *
 * Damage stays local: a damaged or foreign index segment is quarantined (quarantine.ts) and the rest of the index
 * loads; a damaged manifest is listed as damaged (scanPoints) while the source's other points work; a file in
 * points/ that is not named like a manifest is ignored with a warning; nothing but a regular file is ever read
 * (readStoreFile: a FIFO planted in the store cannot block). Warnings go to `onWarning` (default: stderr).
 *
 * Locking (lock.ts): source-<name> for backup/check/prune of a source, gc for gc, commit (short) for publishing
 * an index segment + manifest, gc's sweep, and bad-list updates. Readers (list, restore, verify) take no lock:
 * everything they read is immutable once published.
 *
 * Where the bytes are: every object (settings, manifests, index segments, packs, gc's table) is read and written
 * through `backend` (storage/backend/types.ts: the folder itself for an fs store, FsBackend). What stays a
 * local file is what belongs to this appliance, not to the store's data: locks, running-backup markers, holds,
 * the quarantine and the repair mark, all under `localDir` (the store folder for an fs store; for another kind
 * of backend the opener chooses a local state folder).
 *
 * Publishing (`publishPoint`): the one commit sequence of a new point, under the commit lock: packs durable
 * (the writer's finish), then the index segment naming their blobs, then (after an optional compaction) the
 * manifest. A crash before the manifest leaves unnamed blobs that gc removes; never a point naming a missing
 * blob.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { hasCode, isDamagedFile, SvError, toWire, wrapSystemError } from '../src/errors/index.js';
import { openStoreBackend, parseStoreUrl } from './backend/open.js';
import { processAlive } from '../src/util/stale-temps.js';
import { describeKey } from './backend/keys.js';
import type { Backend, BackendRef } from './backend/types.js';

export { describeKey } from './backend/keys.js';
import { atomicWrite, isMissing, isTempName, listDir, readStoreFile, removeFile } from './fsutil.js';
import { BlobIndex, type IndexEntry } from './index.js';
import { PackWriter } from './pack.js';
import { PointPublisher } from './publish.js';
import { LockFile, holderAlive, type LockHolder } from './lock.js';
import { DEFAULT_BLOCK_SIZE, POINT_ID_RE, SOURCE_NAME_RE, STORE_FORMAT, STORE_VERSION } from './layout.js';
import { parseManifest, type DamagedPoint, type PointManifest } from './manifest.js';

export { pointIdTime, type DamagedPoint } from './manifest.js';

export interface Retention {
  /** Keep points younger than this many days (0: no age limit). */
  readonly days: number;
  /** Keep at most this many points (0: no count limit). */
  readonly maxCount: number;
}

export interface SourceSettings {
  readonly name: string;
  readonly blockSize: number;
  readonly retention: Retention;
  readonly created: string;
}

export interface RunningJob extends LockHolder {
  readonly id: string;
  readonly source: string;
  readonly startMs: number;
}

/** The default store folder: $SHADOWVAULT_STORE, else $XDG_DATA_HOME/shadowvault/store, else ~/.local/share/... */
export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SHADOWVAULT_STORE) return env.SHADOWVAULT_STORE;
  const base = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'shadowvault', 'store');
}

export function checkSourceName(name: string): void {
  if (!SOURCE_NAME_RE.test(name)) {
    throw new SvError('SV_ERR_STORE_BAD_NAME', `data source name ${JSON.stringify(name)}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`, { name });
  }
}

function corruptConfig(path: string, what: string): SvError {
  return new SvError('SV_ERR_STORE_CORRUPT_CONFIG', `${path}: ${what}`, { path });
}

/** A settings object (JSON) of the store, or undefined when it does not exist. */
async function readJson(backend: Backend, key: string): Promise<unknown | undefined> {
  const path = describeKey(backend, key);
  let text: string;
  try {
    text = (await backend.get(key)).toString('utf8');
  } catch (err) {
    if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) return undefined;
    if (hasCode(err, 'SV_ERR_STORE_FOREIGN_FILE')) throw corruptConfig(path, (err as Error).message);
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw corruptConfig(path, `not valid JSON (${(err as Error).message})`);
  }
}

/** What `publishPoint` needs from the run that made the point. */
export interface PublishRequest {
  /** The point's packs: finished (durable) before the index segment is written. */
  readonly writer: PackWriter;
  /** Index entries of the blobs the run added (written as one segment; none: no segment). */
  readonly entries: () => readonly IndexEntry[];
  /** gc generation read when the run started: when it changed, `afterSweep` runs first (under the commit lock). */
  readonly generation: number;
  readonly afterSweep?: () => Promise<void>;
  /** The manifest, given the bytes the segment took. */
  readonly manifest: (segmentBytes: number) => PointManifest;
  /** Save these settings first when the source has none yet (its first point). */
  readonly newSource?: { readonly blockSize: number };
  /** Digests the run rewrote: removed from the bad list after the manifest is published. */
  readonly repaired?: Iterable<string>;
  /** Called once the segment is written: from then on the packs are named and must not be deleted on failure. */
  readonly onNamed?: () => void;
}

export class Store {
  /** The store's local folder: the store itself for an fs store (locks, running markers, holds, quarantine). */
  readonly dir: string;
  readonly id: string;
  /** Where the store's objects are. */
  readonly backend: Backend;
  #index: BlobIndex | undefined;
  readonly #publisher = new PointPublisher(this);
  /** Where warnings go (ignored files, quarantined segments, damaged points skipped). Default: stderr. */
  onWarning: (message: string) => void = (m) => process.stderr.write(`shadowvault: warning: ${m}\n`);
  #warned = new Set<string>();

  private constructor(backend: Backend, localDir: string, id: string) {
    this.backend = backend;
    this.dir = localDir;
    this.id = id;
  }

  /** How to open this store's backend again (worker messages carry it). */
  get ref(): BackendRef { return this.backend.ref; }
  /** Local state folder (= `dir`). */
  get localDir(): string { return this.dir; }
  /** The pack folder of an fs store (fs-only tools: repair, damage tests); see `backend` for everything else. */
  get packsDir(): string { return join(this.#fsDir(), 'packs'); }
  get indexDir(): string { return join(this.#fsDir(), 'index'); }
  get locksDir(): string { return join(this.dir, 'locks'); }
  /** Where packs are written before they are put: the packs folder of an fs store (a put is then a link); other
   * stores build packs in memory (pack-memory.ts) and only clean what older versions left here. */
  get stagingDir(): string { return this.backend.ref.kind === 'fs' ? join(this.backend.ref.dir, 'packs') : join(this.dir, 'staging'); }
  get runningDir(): string { return join(this.dir, 'running'); }
  pointsDir(source: string): string { return join(this.#fsDir(), 'points', source); }

  #fsDir(): string {
    if (this.backend.ref.kind !== 'fs') {
      throw new SvError('SV_ERR_BACKEND_UNAVAILABLE', `not implemented here: ${this.backend.location} is not a folder store; this operation needs one`, { location: this.backend.location });
    }
    return this.backend.ref.dir;
  }

  /**
   * Open the store at `location` (a folder path, an s3:// URL or a reference); with `create`, make it when
   * missing. Throws SV_ERR_STORE_NOT_FOUND otherwise. A non-folder store works through
   * cache(retry(rate(backend))) (backend/open.ts) and keeps its local state in `localDir` (default:
   * state-dir.ts's defaultStateDir), which must belong to it (SV_ERR_STORE_STATE_DIR_MISMATCH); staging files a
   * killed process left there are removed (cleanStaging). Close the store when done (releases the S3 writer
   * lease and connections).
   */
  static async open(location: string | BackendRef, options: { create?: boolean; localDir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Store> {
    const ref = typeof location === 'string' ? parseStoreUrl(location) : location;
    let localDir: string;
    if (ref.kind === 'fs') localDir = options.localDir ?? ref.dir;
    else {
      // Loaded for object storage only (so are quarantine.ts and compact.ts, on the paths that need them): a new
      // CLI process reading a folder store loads less.
      const { claimStateDir, defaultStateDir } = await import('./state-dir.js');
      localDir = resolve(options.localDir ?? defaultStateDir(ref, options.env));
      await claimStateDir(localDir, ref);
    }
    const backend = await openStoreBackend(ref, ref.kind === 'fs' ? undefined : localDir);
    try {
      const store = await Store.#open(backend, localDir, options.create === true);
      if (ref.kind !== 'fs') await store.cleanStaging();
      return store;
    } catch (err) {
      await backend.close().catch(() => undefined);
      throw err;
    }
  }

  /** Release the backend (connections, the S3 writer lease). The store is not usable afterwards. */
  async close(): Promise<void> {
    await this.backend.close();
  }

  /**
   * Remove staging files (`<id>.pack.tmp-<pid>-*` in stagingDir) that a process which no longer runs left
   * behind (killed mid-backup). Only for a non-folder store, whose staging folder is local and never holds a
   * published object; a folder store's temporaries live among its packs and are gc's (orphan rule). A file of
   * a live process (a backup running now) is kept. Returns how many were removed.
   */
  async cleanStaging(): Promise<number> {
    if (this.backend.ref.kind === 'fs') return 0;
    let removed = 0;
    for (const f of await listDir(this.stagingDir)) {
      const m = /\.tmp-(\d+)-/.exec(f);
      if (!m || !isTempName(f)) continue;
      const pid = Number(m[1]);
      if (processAlive(pid)) continue;
      if (await removeFile(join(this.stagingDir, f)).catch(() => false)) removed++;
    }
    if (removed) this.warn(`removed ${removed} staging file(s) of killed backups from ${this.stagingDir}`);
    return removed;
  }

  static async #open(backend: Backend, localDir: string, create: boolean): Promise<Store> {
    const path = describeKey(backend, 'store.json');
    let meta = await readJson(backend, 'store.json');
    if (meta === undefined) {
      if (!create) throw new SvError('SV_ERR_STORE_NOT_FOUND', `no volume store at ${backend.location} (no store.json); a backup creates one`, { path: backend.location });
      const subs = backend.ref.kind === 'fs' ? ['packs', 'index', 'points', 'sources', 'locks', 'running'] : ['locks', 'running'];
      for (const sub of subs) {
        const base = backend.ref.kind === 'fs' && sub !== 'locks' && sub !== 'running' ? backend.ref.dir : localDir;
        await mkdir(join(base, sub), { recursive: true }).catch((err: unknown) => { throw wrapSystemError(err, `create ${join(base, sub)}`); });
      }
      const fresh = { format: STORE_FORMAT, version: STORE_VERSION, id: randomUUID(), created: new Date().toISOString() };
      try {
        await backend.put('store.json', Buffer.from(JSON.stringify(fresh, null, 1)));
      } catch (err) {
        if (!hasCode(err, 'SV_ERR_BACKEND_EXISTS')) throw err; // created meanwhile by another process: use theirs
      }
      meta = await readJson(backend, 'store.json');
    }
    const m = meta as { format?: unknown; version?: unknown; id?: unknown };
    if (typeof m !== 'object' || m === null || m.format !== STORE_FORMAT) throw corruptConfig(path, `not a shadowvault store (format ${JSON.stringify(m?.format)})`);
    if (m.version !== STORE_VERSION) throw new SvError('SV_ERR_STORE_BAD_VERSION', `${path}: store version ${JSON.stringify(m.version)}, this build reads ${STORE_VERSION}`, { path });
    if (typeof m.id !== 'string') throw corruptConfig(path, 'id missing');
    // The local folders (a store copied without its empty folders still works; a read-only one still reads).
    for (const sub of ['locks', 'running']) await mkdir(join(localDir, sub), { recursive: true }).catch(() => undefined);
    return new Store(backend, localDir, m.id);
  }

  /** Report a warning once per store instance. */
  warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.onWarning(message);
  }

  /**
   * Replace a small mutable object (settings, bad list, gc generation, gc's table). On an fs store the file may
   * have been replaced by a folder (rename cannot replace one): the folder is quarantined and the write done
   * again. A FIFO or a damaged file is simply replaced by the rename.
   */
  async replaceObject(key: string, area: string, data: Buffer | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      await this.backend.replace(key, bytes);
    } catch (err) {
      const errno = (err as { cause?: { code?: unknown } }).cause?.code;
      if (this.backend.ref.kind !== 'fs' || (errno !== 'EISDIR' && errno !== 'ENOTEMPTY' && errno !== 'EEXIST')) throw err;
      const path = join(this.backend.ref.dir, key);
      const { quarantineFile } = await import('./quarantine.js');
      const moved = await quarantineFile(this.dir, path, area, 'a folder where the store keeps a file', 'SV_ERR_STORE_FOREIGN_FILE');
      this.warn(`${path} was a folder; quarantined${moved ? ` as ${moved.name}` : ''} and written again`);
      await this.backend.replace(key, bytes);
    }
  }

  // ---- settings -------------------------------------------------------------------------------------------

  async getSource(name: string): Promise<SourceSettings | undefined> {
    checkSourceName(name);
    const key = `sources/${name}.json`;
    const path = describeKey(this.backend, key);
    let v: Partial<SourceSettings> | undefined;
    try {
      v = (await readJson(this.backend, key)) as Partial<SourceSettings> | undefined;
      if (v === undefined) return undefined;
      if (typeof v !== 'object' || v === null || typeof v.blockSize !== 'number' || typeof v.retention !== 'object' || v.retention === null) {
        throw corruptConfig(path, 'expected {name, blockSize, retention: {days, maxCount}, created}');
      }
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_STORE_CORRUPT_CONFIG')) throw err;
      // Damaged settings: keep everything (no retention) rather than stop the source; its points say the block size.
      this.warn(`${(err as Error).message}; using defaults (no retention) until the settings are saved again`);
      return { name, blockSize: DEFAULT_BLOCK_SIZE, retention: { days: 0, maxCount: 0 }, created: '' };
    }
    return { name, blockSize: v.blockSize, retention: { days: Number(v.retention.days) || 0, maxCount: Number(v.retention.maxCount) || 0 }, created: String(v.created ?? '') };
  }

  async saveSource(s: SourceSettings): Promise<void> {
    checkSourceName(s.name);
    await this.replaceObject(`sources/${s.name}.json`, 'sources', JSON.stringify(s, null, 1));
  }

  async ensureSource(name: string, blockSize = DEFAULT_BLOCK_SIZE): Promise<SourceSettings> {
    const have = await this.getSource(name);
    if (have) return have;
    const s: SourceSettings = { name, blockSize, retention: { days: 0, maxCount: 0 }, created: new Date().toISOString() };
    await this.saveSource(s);
    return s;
  }

  async listSources(): Promise<string[]> {
    const names = new Set<string>();
    for await (const o of this.backend.list('sources/')) {
      const f = o.key.slice('sources/'.length);
      if (!f.includes('/') && f.endsWith('.json') && SOURCE_NAME_RE.test(f.slice(0, -5))) names.add(f.slice(0, -5));
    }
    for await (const o of this.backend.list('points/')) {
      const [, f, rest] = o.key.split('/', 3) as [string, string, string | undefined];
      if (SOURCE_NAME_RE.test(f) && rest !== undefined) names.add(f);
      else this.warn(`${describeKey(this.backend, `points/${f}`)} is not a data source's points folder; ignored`);
    }
    return [...names].sort();
  }

  // ---- points ---------------------------------------------------------------------------------------------

  /** Ids of the manifests of a source (names `<point id>.json`); any other object is ignored with a warning. */
  async listPointIds(source: string): Promise<string[]> {
    checkSourceName(source);
    const ids: string[] = [];
    const prefix = `points/${source}/`;
    for await (const o of this.backend.list(prefix)) {
      const f = o.key.slice(prefix.length);
      if (f.endsWith('.json') && POINT_ID_RE.test(f.slice(0, -5))) ids.push(f.slice(0, -5));
      else this.warn(`${describeKey(this.backend, o.key)} is not a recovery point manifest (expected <point id>.json); ignored`);
    }
    return ids.sort();
  }

  async readPoint(source: string, id: string): Promise<PointManifest> {
    const key = `points/${source}/${id}.json`;
    const path = describeKey(this.backend, key);
    let text: string;
    try {
      text = (await this.backend.get(key)).toString('utf8');
    } catch (err) {
      if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) {
        throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `data source "${source}" has no recovery point ${id} in ${this.backend.location}`, { source, id });
      }
      throw err;
    }
    const m = parseManifest(text, path);
    if (m.id !== id || m.source !== source) {
      throw new SvError('SV_ERR_STORE_CORRUPT_MANIFEST', `manifest ${path}: names point ${m.source}@${m.id}, expected ${source}@${id}`, { path });
    }
    return m;
  }

  /**
   * All points of a source, oldest first: the readable ones, and those whose manifest is damaged (truncated,
   * edited, a wrong version, not a regular file) with their coded error.
   */
  async scanPoints(source: string): Promise<{ points: PointManifest[]; damaged: DamagedPoint[] }> {
    const points: PointManifest[] = [];
    const damaged: DamagedPoint[] = [];
    for (const id of await this.listPointIds(source)) {
      try {
        points.push(await this.readPoint(source, id));
      } catch (err) {
        if (hasCode(err, 'SV_ERR_STORE_POINT_NOT_FOUND')) continue; // pruned while listing
        if (!isDamagedFile(err, 'SV_ERR_STORE_CORRUPT_MANIFEST')) throw err;
        damaged.push({ source, id, path: describeKey(this.backend, `points/${source}/${id}.json`), error: toWire(err) });
      }
    }
    return { points, damaged };
  }

  /** The readable points of a source, oldest first; a damaged one is skipped with a warning naming its error. */
  async listPoints(source: string): Promise<PointManifest[]> {
    const { points, damaged } = await this.scanPoints(source);
    for (const d of damaged) this.warn(`recovery point ${source}@${d.id} skipped: ${d.error.code}: ${d.error.message}`);
    return points;
  }

  async latestPoint(source: string): Promise<PointManifest | undefined> {
    const ids = await this.listPointIds(source);
    return ids.length ? this.readPoint(source, ids[ids.length - 1]!) : undefined;
  }

  /** Resolve "latest", "" or an id (or a unique id prefix) to a manifest. */
  async resolvePoint(source: string, ref: string | undefined): Promise<PointManifest> {
    const ids = await this.listPointIds(source);
    if (!ids.length) throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `data source "${source}" has no recovery points in ${this.backend.location}`, { source });
    if (!ref || ref === 'latest') return this.readPoint(source, ids[ids.length - 1]!);
    const matches = ids.filter((id) => id === ref || id.startsWith(ref));
    if (matches.length !== 1) {
      throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `data source "${source}": ${matches.length ? `point id prefix ${ref} is ambiguous (${matches.length} points)` : `no recovery point ${ref}`}`, { source, point: ref });
    }
    return this.readPoint(source, matches[0]!);
  }

  // ---- index, bad list, gc generation ---------------------------------------------------------------------

  /**
   * The blob index as it is on disk now (segments already loaded are reused). A damaged or foreign segment is
   * quarantined (and repair marked as needed); the others load.
   */
  async loadIndex(): Promise<BlobIndex> {
    this.#index = await BlobIndex.load(this.backend, this.#index?.segments ?? [], async (path, name, err) => {
      if (this.backend.ref.kind !== 'fs') throw err; // quarantine moves files: folder stores only
      const { markNeedsRepair, quarantineFile } = await import('./quarantine.js');
      const moved = await quarantineFile(this.dir, path, 'index', err.message, err.code);
      if (!moved) return true; // gone meanwhile (quarantined by another process, replaced by gc): list again
      await markNeedsRepair(this.dir, [moved.name]);
      this.warn(`index segment ${name} quarantined to ${join(this.dir, 'quarantine', moved.name)} (${err.code}: ${err.message}); the blocks only it listed are unreachable until \`shadowvault repair\` rebuilds the index from the packs`);
      return true;
    });
    return this.#index;
  }

  async readBad(): Promise<Set<string>> {
    const path = describeKey(this.backend, 'bad.json');
    try {
      const v = (await readJson(this.backend, 'bad.json')) as { digests?: unknown } | undefined;
      if (v === undefined) return new Set();
      if (typeof v !== 'object' || v === null || !Array.isArray(v.digests)) throw corruptConfig(path, 'expected {"digests": [hex, ...]}');
      return new Set(v.digests.map(String));
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_STORE_CORRUPT_CONFIG')) throw err;
      // A hint list: losing it costs a rewrite the next verify asks for again, never data.
      this.warn(`${(err as Error).message}; the bad-block list is taken as empty (run verify to find bad blocks again)`);
      return new Set();
    }
  }

  /** Update bad.json; call with the commit lock held. */
  async updateBad(add: Iterable<string>, remove: Iterable<string>): Promise<void> {
    const set = await this.readBad();
    const before = set.size;
    let changed = false;
    for (const d of add) if (!set.has(d)) { set.add(d); changed = true; }
    for (const d of remove) if (set.delete(d)) changed = true;
    if (!changed && set.size === before) return;
    await this.replaceObject('bad.json', 'store', JSON.stringify({ digests: [...set].sort() }, null, 1));
  }

  /** The gc generation; -1 when gc.json is damaged (differs from any real one, so a backup re-checks reuse). */
  async gcGeneration(): Promise<number> {
    try {
      const v = (await readJson(this.backend, 'gc.json')) as { generation?: unknown } | undefined;
      return v && typeof v.generation === 'number' ? v.generation : 0;
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_STORE_CORRUPT_CONFIG')) throw err;
      this.warn(`${(err as Error).message}; gc generation unknown (the next gc writes a new one)`);
      return -1;
    }
  }

  async bumpGcGeneration(): Promise<number> {
    const cur = await this.gcGeneration();
    const next = cur < 0 ? Date.now() : cur + 1; // after damage: a number no backup can have read before
    await this.replaceObject('gc.json', 'store', JSON.stringify({ generation: next, time: new Date().toISOString() }));
    return next;
  }

  /** A pack writer staging in `stagingDir` (one per job). */
  packWriter(targetSize?: number): PackWriter {
    return new PackWriter(this.backend, targetSize, this.stagingDir);
  }

  // ---- publishing ---------------------------------------------------------------------------------------

  /**
   * Publish a new point: the commit sequence (see the header). Finishes the writer's packs (durable), takes the
   * commit lock, lets a run that raced a gc sweep rewrite what it reused (`afterSweep`), writes the index
   * segment of the run's blobs, compacts the index when segments pile up, saves a new source's settings, then
   * puts the manifest (create-only: a point is never overwritten) and clears the bad-list entries the run
   * rewrote. Points of this Store waiting for the commit lock are published together (publish.ts). Returns
   * the manifest.
   */
  /** Points of this Store waiting to be published or being published (publish.ts). */
  get publishing(): number {
    return this.#publisher.pending;
  }

  async publishPoint(req: PublishRequest): Promise<PointManifest> {
    await req.writer.finish();
    return this.#publisher.publish(req);
  }

  // ---- locks and running jobs -----------------------------------------------------------------------------

  lockSource(source: string, operation: string): Promise<LockFile> {
    checkSourceName(source);
    return LockFile.acquire(join(this.locksDir, `source-${source}.lock`), operation, `data source "${source}"`);
  }

  lockGc(): Promise<LockFile> {
    return LockFile.acquire(join(this.locksDir, 'gc.lock'), 'gc', `gc of store ${this.backend.location}`);
  }

  /** The short commit lock; waits up to `waitMs` for a sweep or another commit to finish. */
  lockCommit(operation: string, waitMs = 10 * 60 * 1000): Promise<LockFile> {
    return LockFile.acquire(join(this.locksDir, 'commit.lock'), operation, `commit lock of store ${this.backend.location}`, waitMs);
  }

  /**
   * Register a running backup before it uploads anything (`running/<id>.json` in the local folder): gc never
   * deletes unnamed packs created after the oldest running backup started (gc.ts, orphan rule).
   */
  async registerRunning(source: string, operation: string): Promise<RunningJob & { unregister(): Promise<void> }> {
    const { hostname } = await import('node:os');
    const { bootId } = await import('./lock.js');
    const job: RunningJob = {
      id: randomUUID(), source, pid: process.pid, host: hostname(), boot: bootId(), operation, since: new Date().toISOString(), startMs: Date.now(),
    };
    const path = join(this.runningDir, `${job.id}.json`);
    await atomicWrite(path, JSON.stringify(job));
    return { ...job, unregister: async () => { await removeFile(path); } };
  }

  /** Running jobs whose process is alive; stale registrations are removed. */
  async listRunning(): Promise<RunningJob[]> {
    const out: RunningJob[] = [];
    for (const f of await listDir(this.runningDir)) {
      if (!f.endsWith('.json') || isTempName(f)) continue;
      const path = join(this.runningDir, f);
      const v = (await readLocalJson(path).catch(() => undefined)) as RunningJob | undefined;
      if (v && typeof v.pid === 'number' && holderAlive(v)) out.push(v);
      else await removeFile(path).catch(() => false);
    }
    return out;
  }
}

/** A local JSON file (running markers), or undefined when missing. */
async function readLocalJson(path: string): Promise<unknown | undefined> {
  try {
    return JSON.parse((await readStoreFile(path)).toString('utf8'));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}
