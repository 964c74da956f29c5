/**
 * The local state folder of a store whose objects are not on this machine (an S3 store): what belongs to this
 * appliance and not to the bucket. A folder store keeps these in its own folder and has no separate state
 * folder.
 *
 * Layout of a state folder:
 *   <state>/store-identity.json   { identity, location }: the store this folder belongs to (written once)
 *   <state>/cache/                the local cache of index segments and manifests (backend/wrap-cache.ts)
 *   <state>/locks/, running/      source/gc/commit locks and running-backup markers (store.ts, lock.ts)
 *   <state>/staging/              staging files of older versions (packs are now built in memory:
 *                                 pack-memory.ts); `<id>.pack.tmp-<pid>-*` files of killed backups are
 *                                 removed by the next open (cleanStaging)
 *   <state>/holds/ ...            holds, quarantine mark (as in a store folder)
 *
 * Where it is (`stateDirFor`): the caller's choice (`--state-dir`; `serve`: `<data-dir>/store-state`), else
 * $SHADOWVAULT_STATE_DIR, else `$XDG_STATE_HOME/shadowvault/stores/<bucket>-<16 hex>` (XDG_STATE_HOME
 * defaulting to ~/.local/state), the hex being the start of the SHA-256 of the store's identity.
 *
 * Identity: the endpoint (or AWS and the region), bucket and prefix; not the rate, lock or readOnly
 * parameters, which change how this appliance talks to the same objects. A state folder used with another
 * store is refused (SV_ERR_STORE_STATE_DIR_MISMATCH): its locks would not exclude the right jobs and its cache
 * would answer with another store's objects.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SvError, wrapSystemError } from '../src/errors/index.js';
import { describeRef } from './backend/open.js';
import type { BackendRef } from './backend/types.js';
import { atomicWrite, isMissing } from './fsutil.js';

const IDENTITY_FILE = 'store-identity.json';

/** What names a store independently of how it is opened. */
export function storeIdentity(ref: BackendRef): string {
  if (ref.kind === 'fs') return `fs:${ref.dir}`;
  return `s3:${ref.endpoint ?? `aws:${ref.region}`}/${ref.bucket}/${ref.prefix}`;
}

/** The default state folder of a non-folder store (see the header). */
export function defaultStateDir(ref: BackendRef, env: NodeJS.ProcessEnv = process.env): string {
  if (env.SHADOWVAULT_STATE_DIR) return env.SHADOWVAULT_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  const hash = createHash('sha256').update(storeIdentity(ref)).digest('hex').slice(0, 16);
  const name = ref.kind === 's3' ? ref.bucket : 'store';
  return join(base, 'shadowvault', 'stores', `${name}-${hash}`);
}

/**
 * Make `dir` the state folder of the store at `ref`: created when missing, its identity recorded on first use
 * and checked on every later one (SV_ERR_STORE_STATE_DIR_MISMATCH).
 */
export async function claimStateDir(dir: string, ref: BackendRef): Promise<void> {
  await mkdir(dir, { recursive: true }).catch((err: unknown) => { throw wrapSystemError(err, `create state folder ${dir}`); });
  const identity = storeIdentity(ref);
  const path = join(dir, IDENTITY_FILE);
  let have: { identity?: unknown; location?: unknown } | undefined;
  try {
    have = JSON.parse(await readFile(path, 'utf8')) as typeof have;
  } catch (err) {
    if (!isMissing(err) && !(err instanceof SyntaxError)) throw wrapSystemError(err, `read ${path}`);
  }
  if (have && typeof have.identity === 'string') {
    if (have.identity === identity) return;
    throw new SvError('SV_ERR_STORE_STATE_DIR_MISMATCH', `state folder ${dir} belongs to store ${String(have.location ?? have.identity)}, not ${describeRef(ref)}; give each store its own --state-dir`, {
      stateDir: dir, belongsTo: String(have.location ?? have.identity), location: describeRef(ref),
    });
  }
  await atomicWrite(path, `${JSON.stringify({ identity, location: describeRef(ref), since: new Date().toISOString() }, null, 1)}\n`);
}
