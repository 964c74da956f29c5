/**
 * Opening a backend from its reference, and store locations from text. A location is a folder path (the
 * FsBackend) or `s3://BUCKET/PREFIX?endpoint=URL&region=R` (an S3-compatible object store).
 *
 * URL parameters (all optional; an unknown one is refused, never ignored):
 *   endpoint=URL       the S3 endpoint (http(s)://host[:port]); absent: AWS's regional endpoint
 *   region=R           signing region (default us-east-1)
 *   pathStyle=true|false  path-style addressing (default: true with an endpoint, false without)
 *   rate=N             requests per second at most (default 0: no limit)
 *   lock=MODE:DAYS     Object Lock retention for immutable objects (MODE COMPLIANCE or GOVERNANCE)
 *   readOnly=true      open read-only (a second appliance listing and restoring)
 * Credentials never appear in the URL: user:password@ in it is refused (the AWS environment variables or the
 * shared credentials file hold them).
 *
 * The wrapper stack, composed here and nowhere else (`openBackend`, `sharedBackend`, `openStoreBackend`):
 *   cache(retry(rate(backend)))
 *   - rate (wrap-rate.ts): when the ref has rate=N; every opener's result gets it;
 *   - retry (wrap-retry.ts): around every non-folder backend a store or a worker thread uses;
 *   - cache (wrap-cache.ts): index segments and manifests, in the store's local state folder (Store.open).
 * A folder store gets none of them (its calls do not fail transiently and it is its own cache).
 *
 * Adding a backend kind: its module calls `registerBackend(kind, opener)` when loaded, and its path goes in
 * LOADERS below (one line), so any thread that meets a reference of that kind loads it on demand. A kind
 * whose module is missing from the build throws SV_ERR_BACKEND_UNAVAILABLE.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { SvError } from '../../src/errors/index.js';
import { FsBackend } from './fs.js';
import type { Backend, BackendRef, S3BackendRef } from './types.js';
// The wrappers (cache, rate, retry) are for object storage only: loaded when such a store is opened, so that a
// command on a folder store (a new CLI process: `files get`) does not load them.

export type BackendOpener<R extends BackendRef = BackendRef> = (ref: R) => Promise<Backend>;

const OPENERS = new Map<BackendRef['kind'], BackendOpener>();
OPENERS.set('fs', async (ref) => new FsBackend((ref as { dir: string }).dir));

/** Kind → module that registers its opener (relative to this file). */
const LOADERS: Partial<Record<BackendRef['kind'], string>> = {
  s3: './s3.js',
};

/** Register the opener of a backend kind (called by that kind's module when it is loaded). */
export function registerBackend<K extends BackendRef['kind']>(kind: K, opener: BackendOpener<Extract<BackendRef, { kind: K }>>): void {
  OPENERS.set(kind, opener as BackendOpener);
}

/** Open the backend a reference names (loading its module on first use). */
export async function openBackend(ref: BackendRef): Promise<Backend> {
  let opener = OPENERS.get(ref.kind);
  if (!opener && LOADERS[ref.kind]) {
    const specifier = LOADERS[ref.kind]!;
    try {
      await import(specifier);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
    opener = OPENERS.get(ref.kind);
  }
  if (!opener) {
    throw new SvError('SV_ERR_BACKEND_UNAVAILABLE', `${describeRef(ref)}: ${ref.kind} stores are not available in this build`, { kind: ref.kind });
  }
  const backend = await opener(ref);
  if (ref.kind !== 's3' || ref.rateLimit <= 0) return backend;
  const { RateLimitBackend } = await import('./wrap-rate.js');
  return new RateLimitBackend(backend, ref.rateLimit);
}

/** retry(rate(backend)) for a non-folder backend (see the header); a folder store as it is. */
async function openRetrying(ref: BackendRef): Promise<Backend> {
  const backend = await openBackend(ref);
  return ref.kind === 'fs' ? backend : new (await import('./wrap-retry.js')).RetryBackend(backend);
}

/**
 * The backend a store works through: cache(retry(rate(backend))), the cache in `<stateDir>/cache`. A folder
 * store (no state folder) is the bare FsBackend.
 */
export async function openStoreBackend(ref: BackendRef, stateDir: string | undefined): Promise<Backend> {
  const backend = await openRetrying(ref);
  return ref.kind === 'fs' || stateDir === undefined ? backend : new (await import('./wrap-cache.js')).CacheBackend(backend, join(stateDir, 'cache'));
}

/** A reference for messages (no credentials: references never hold any). */
export function describeRef(ref: BackendRef): string {
  return ref.kind === 'fs' ? ref.dir : `s3://${ref.bucket}/${ref.prefix}`;
}

const S3_PARAMS = new Set(['endpoint', 'region', 'pathStyle', 'rate', 'lock', 'readOnly']);
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

function badUrl(text: string, why: string): SvError {
  return new SvError('SV_ERR_BACKEND_BAD_URL', `store location ${JSON.stringify(redact(text))}: ${why}`, { location: redact(text) });
}

/** The text without anything that looks like credentials (user:password@). */
function redact(text: string): string {
  return text.replace(/^([a-z0-9+.-]+:\/\/)[^/@]*@/i, '$1***@');
}

/**
 * A store location → its reference. A folder path (relative to `cwd`) is an fs store; `s3://...` an S3 store;
 * any other `scheme://` is refused with SV_ERR_BACKEND_BAD_URL.
 */
export function parseStoreUrl(text: string, cwd = process.cwd()): BackendRef {
  if (typeof text !== 'string' || text.length === 0) throw badUrl(String(text), 'empty');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) {
    if (text.includes('\0')) throw badUrl(text, 'a folder path cannot contain a NUL byte');
    return { kind: 'fs', dir: isAbsolute(text) ? resolve(text) : resolve(cwd, text) };
  }
  if (scheme[1]!.toLowerCase() !== 's3') throw badUrl(text, `unknown scheme ${scheme[1]}:// (a folder path or s3://BUCKET/PREFIX)`);
  return parseS3Url(text);
}

function parseS3Url(text: string): S3BackendRef {
  const rawPath = text.slice('s3://'.length).split(/[?#]/, 1)[0]!.split('/').slice(1);
  if (rawPath.some((s) => s === '.' || s === '..')) throw badUrl(text, 'the prefix cannot have a . or .. segment');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badUrl(text, 'not a valid URL (s3://BUCKET/PREFIX?endpoint=URL&region=R)');
  }
  if (url.username || url.password) throw badUrl(text, 'credentials do not belong in the URL (use the AWS environment variables or ~/.aws/credentials)');
  if (url.port) throw badUrl(text, 'the bucket cannot have a port (put the server in endpoint=URL)');
  if (url.hash) throw badUrl(text, 'a #fragment is not allowed');
  const bucket = url.hostname;
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) throw badUrl(text, `bucket name ${JSON.stringify(bucket)} is not valid (3-63 of a-z 0-9 . -)`);
  let path: string;
  try {
    path = decodeURIComponent(url.pathname).replace(/^\/+/, '').replace(/\/+$/, '');
  } catch {
    throw badUrl(text, 'the prefix has a malformed %-escape');
  }
  const segments = path ? path.split('/') : [];
  for (const s of segments) {
    if (!PREFIX_SEGMENT_RE.test(s) || s === '.' || s === '..') throw badUrl(text, `prefix segment ${JSON.stringify(s)} is not valid ([A-Za-z0-9._-], not . or ..)`);
  }
  const prefix = segments.length ? `${segments.join('/')}/` : '';
  const q = url.searchParams;
  for (const name of new Set(q.keys())) {
    if (!S3_PARAMS.has(name)) throw badUrl(text, `unknown parameter ${name} (known: ${[...S3_PARAMS].join(', ')})`);
    if (q.getAll(name).length > 1) throw badUrl(text, `parameter ${name} given twice`);
  }
  let endpoint: string | null = null;
  const ep = q.get('endpoint');
  if (ep !== null) {
    let e: URL;
    try {
      e = new URL(ep);
    } catch {
      throw badUrl(text, `endpoint ${JSON.stringify(ep)} is not a URL`);
    }
    if (e.protocol !== 'http:' && e.protocol !== 'https:') throw badUrl(text, 'endpoint must be http:// or https://');
    if (e.username || e.password) throw badUrl(text, 'credentials do not belong in the endpoint URL');
    if ((e.pathname !== '/' && e.pathname !== '') || e.search || e.hash) throw badUrl(text, 'endpoint must be scheme://host[:port] only');
    endpoint = `${e.protocol}//${e.host}`;
  }
  const region = q.get('region') ?? 'us-east-1';
  if (!/^[a-z0-9-]{1,40}$/.test(region)) throw badUrl(text, `region ${JSON.stringify(region)} is not valid`);
  const forcePathStyle = parseBool(text, 'pathStyle', q.get('pathStyle'), endpoint !== null);
  const readOnly = parseBool(text, 'readOnly', q.get('readOnly'), false);
  const rateText = q.get('rate');
  const rateLimit = rateText === null ? 0 : Number(rateText);
  if (!Number.isFinite(rateLimit) || rateLimit < 0 || rateLimit > 1e6 || rateText === '') throw badUrl(text, `rate ${JSON.stringify(rateText)} is not a number of requests per second`);
  let objectLock: S3BackendRef['objectLock'] = null;
  const lock = q.get('lock');
  if (lock !== null) {
    const m = /^(COMPLIANCE|GOVERNANCE):(\d{1,5})$/.exec(lock);
    if (!m || Number(m[2]) < 1) throw badUrl(text, `lock ${JSON.stringify(lock)} is not MODE:DAYS (COMPLIANCE or GOVERNANCE, days >= 1)`);
    objectLock = { mode: m[1] as 'COMPLIANCE' | 'GOVERNANCE', days: Number(m[2]) };
  }
  return { kind: 's3', bucket, prefix, endpoint, region, forcePathStyle, rateLimit, objectLock, readOnly };
}

function parseBool(text: string, name: string, value: string | null, dflt: boolean): boolean {
  if (value === null) return dflt;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw badUrl(text, `${name} must be true or false`);
}

const SHARED = new Map<string, Promise<Backend>>();

/**
 * One backend per reference for this thread (retry(rate(backend))), opened on first use and kept (workers read packs of the same
 * store task after task: an S3 client and its connections are not rebuilt for every task). Never close it.
 * It only reads (packs: pack-backend.ts), so object storage is opened read-only: no writer lease, no
 * conditional-write probe (the store's own backend holds the lease; a read-only backend needs none), which
 * spares every command that reads packs on its main thread (restore, verify) 6 requests.
 */
export function sharedBackend(ref: BackendRef): Promise<Backend> {
  const id = JSON.stringify(ref);
  let p = SHARED.get(id);
  if (!p) {
    p = openRetrying(ref.kind === 's3' ? { ...ref, readOnly: true } : ref);
    SHARED.set(id, p);
    p.catch(() => SHARED.delete(id));
  }
  return p;
}
