/**
 * A local cache of the store's small immutable objects (index segments `index/*.idx` and point manifests
 * `points/**.json`) around any backend, so that listing points and planning a restore cost no request per
 * object (PBS keeps the same cache in front of S3). Packs and the mutable settings objects are not cached.
 *
 * Layout of the cache folder:
 *   <cache>/objects/<key>     a copy of the object, its mtime set to the object's createdMs
 *   <cache>/listed.json       { location, kinds: { "index/": ms, "points/": ms } }: when each kind was last
 *                             listed whole from the backend (and the cache made to match it)
 *
 * Rules:
 * - get/getRange/stat of a cached kind are served from the copy when there is one; a missing copy is fetched
 *   from the backend (get and stat) and kept. The copies are never trusted over the backend for anything but
 *   their own bytes: the objects are immutable, so a copy is right or absent.
 * - put of a cached kind stores the object in the backend first, then keeps a copy; delete removes the object
 *   from the backend first, then the copy. A crash between the two leaves a copy of a deleted object at worst,
 *   which the next refresh drops.
 * - FRESH: the listing of a kind is served from the cache while the kind was listed whole from the backend
 *   less than `ttlMs` ago (default 5 minutes) by any process using this cache folder for the same backend
 *   location. Changes made through this cache (every writer of a store uses its one cache) are in the cache
 *   at once; changes made by anyone else (a second appliance) are seen at the latest `ttlMs` later. A stale or
 *   missing listing is refreshed before the list is answered: the kind is listed from the backend, missing
 *   copies are fetched, copies of objects that are gone (and older than the listing) are dropped.
 */
import { mkdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { hasCode } from '../../src/errors/index.js';
import { atomicWrite } from '../fsutil.js';
import { FsBackend } from './fs.js';
import { checkKey } from './keys.js';
import { WrappedBackend } from './wrap.js';
import type { Backend, ObjectBody, ObjectInfo } from './types.js';

export const CACHED_KINDS = ['index/', 'points/'] as const;
type Kind = (typeof CACHED_KINDS)[number];

export interface CacheOptions {
  /** How long a listing taken from the backend stays fresh, ms (default 300000). */
  readonly ttlMs?: number;
}

interface Stamp {
  location: string;
  kinds: Partial<Record<Kind, number>>;
}

/** The cached kind of a key, if any. */
export function cachedKind(key: string): Kind | undefined {
  if (key.startsWith('index/') && key.endsWith('.idx')) return 'index/';
  if (key.startsWith('points/') && key.endsWith('.json')) return 'points/';
  return undefined;
}

export class CacheBackend extends WrappedBackend {
  readonly cacheDir: string;
  readonly #copies: FsBackend;
  readonly #ttlMs: number;
  #refreshing = new Map<Kind, Promise<void>>();

  constructor(inner: Backend, cacheDir: string, options: CacheOptions = {}) {
    super(inner);
    this.cacheDir = cacheDir;
    this.#copies = new FsBackend(join(cacheDir, 'objects'));
    this.#ttlMs = options.ttlMs ?? 300_000;
  }

  /** Keep a copy of an object (its mtime: the object's createdMs). */
  async #keep(key: string, bytes: Uint8Array, createdMs: number): Promise<void> {
    await this.#copies.replace(key, bytes);
    const t = new Date(createdMs);
    await utimes(this.#copies.pathOf(key), t, t);
  }

  async #copy(key: string): Promise<Buffer | undefined> {
    try {
      return await this.#copies.get(key);
    } catch (err) {
      if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  override async put(key: string, body: ObjectBody): Promise<void> {
    checkKey(key);
    if (!cachedKind(key)) return this.inner.put(key, body);
    const bytes = body instanceof Uint8Array ? body : await readFile(body.file);
    await this.inner.put(key, body);
    await this.#keep(key, bytes, Date.now());
  }

  override async get(key: string): Promise<Buffer> {
    checkKey(key);
    if (!cachedKind(key)) return this.inner.get(key);
    const hit = await this.#copy(key);
    if (hit) return hit;
    const [bytes, info] = await Promise.all([this.inner.get(key), this.inner.stat(key)]);
    await this.#keep(key, bytes, info.createdMs);
    return bytes;
  }

  override async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    checkKey(key);
    if (!cachedKind(key)) return this.inner.getRange(key, offset, length);
    try {
      return await this.#copies.getRange(key, offset, length);
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw err;
    }
    return this.inner.getRange(key, offset, length);
  }

  override async stat(key: string): Promise<ObjectInfo> {
    checkKey(key);
    if (cachedKind(key)) {
      try {
        return await this.#copies.stat(key);
      } catch (err) {
        if (!hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw err;
      }
    }
    return this.inner.stat(key);
  }

  override async delete(key: string): Promise<void> {
    checkKey(key);
    await this.inner.delete(key);
    if (cachedKind(key)) await this.#copies.delete(key);
  }

  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const kind = CACHED_KINDS.find((k) => prefix.startsWith(k));
    if (!kind) {
      yield* this.inner.list(prefix);
      return;
    }
    if (!(await this.#isFresh(kind))) await this.#refresh(kind);
    yield* this.#copies.list(prefix);
  }

  async #stamp(): Promise<Stamp> {
    try {
      const s = JSON.parse(await readFile(join(this.cacheDir, 'listed.json'), 'utf8')) as Stamp;
      if (s && s.location === this.inner.location && typeof s.kinds === 'object' && s.kinds) return s;
    } catch {
      /* missing or damaged: not fresh */
    }
    return { location: this.inner.location, kinds: {} };
  }

  async #isFresh(kind: Kind): Promise<boolean> {
    const at = (await this.#stamp()).kinds[kind];
    return typeof at === 'number' && Date.now() - at < this.#ttlMs && at <= Date.now();
  }

  /** List the kind whole from the backend and make the copies match it (one refresh per kind at a time). */
  #refresh(kind: Kind): Promise<void> {
    let p = this.#refreshing.get(kind);
    if (!p) {
      p = this.#doRefresh(kind).finally(() => this.#refreshing.delete(kind));
      this.#refreshing.set(kind, p);
    }
    return p;
  }

  async #doRefresh(kind: Kind): Promise<void> {
    const started = Date.now();
    const live = new Map<string, ObjectInfo>();
    for await (const o of this.inner.list(kind)) if (cachedKind(o.key) === kind) live.set(o.key, o);
    const have = new Map<string, ObjectInfo>();
    for await (const c of this.#copies.list(kind)) have.set(c.key, c);
    for (const [key, o] of live) {
      if (have.get(key)?.size === o.size) continue;
      let bytes: Buffer;
      try {
        bytes = await this.inner.get(key);
      } catch (err) {
        if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) continue; // deleted meanwhile
        throw err;
      }
      await this.#keep(key, bytes, o.createdMs);
    }
    for (const [key, c] of have) if (!live.has(key) && c.createdMs < started) await this.#copies.delete(key);
    const stamp = await this.#stamp();
    stamp.kinds[kind] = started;
    await mkdir(this.cacheDir, { recursive: true });
    await atomicWrite(join(this.cacheDir, 'listed.json'), JSON.stringify(stamp));
  }

  override async close(): Promise<void> {
    await this.#copies.close();
    await this.inner.close();
  }
}
