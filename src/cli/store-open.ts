/**
 * How the local store commands (backup, check, points, restore, verify, prune, gc, repair, export, files,
 * store extend-lock) name and open their store:
 *   --store DIR | s3://BUCKET/PREFIX?endpoint=URL&...   default $SHADOWVAULT_STORE, else the data dir's store/
 *   --state-dir DIR   local state of an object-storage store (cache, locks, staging); default
 *                     $SHADOWVAULT_STATE_DIR, else ~/.local/state/shadowvault/stores/<bucket>-<hash>
 *                     (storage/state-dir.ts). A folder store keeps its state in its folder: refused there.
 * The store is opened once per command and closed when the command ends (the S3 writer lease is released).
 */
import { SvError } from '../errors/index.js';
import { parseStoreUrl } from '../../storage/backend/open.js';
import { defaultStoreDir, Store } from '../../storage/store.js';
import type { CliIo } from './command.js';

/** The options every local store command accepts (spread into parseCommandArgs). */
export const STORE_OPTIONS = { store: { type: 'string' }, 'state-dir': { type: 'string' } } as const;

export interface StoreValues {
  readonly store?: string | undefined;
  readonly 'state-dir'?: string | undefined;
}

/** Open the store the command's options name (created when `create` and missing). */
export async function openCliStore(values: StoreValues, io: CliIo, create = false): Promise<Store> {
  const location = values.store ?? defaultStoreDir(io.env);
  const ref = parseStoreUrl(location);
  if (ref.kind === 'fs' && values['state-dir'] !== undefined) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `--state-dir is for a store on object storage (s3://...); the folder store ${ref.dir} keeps its state in its own folder`, {});
  }
  return Store.open(ref, { create, localDir: values['state-dir'], env: io.env });
}

/** Run `fn` with the store open; closed afterwards whatever happens. */
export async function withCliStore<T>(values: StoreValues, io: CliIo, fn: (store: Store) => Promise<T>, create = false): Promise<T> {
  const store = await openCliStore(values, io, create);
  try {
    return await fn(store);
  } finally {
    await store.close().catch(() => undefined);
  }
}
