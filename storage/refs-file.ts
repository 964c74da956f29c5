/**
 * Reading and writing gc's reference table file (`<store>/gc-refs.bin`, format in refs.ts and layout.ts). gc
 * only; the gc lock is held. Loading never fails the run: a missing, corrupt or foreign table means a full mark,
 * and the reason is reported in gc's result.
 */
import { join } from 'node:path';
import { hasCode } from '../src/errors/index.js';
import { isMissing, readStoreFile } from './fsutil.js';
import { REFS_FILE } from './layout.js';
import { emptyRefState, encodeRefState, parseRefState, type RefState } from './refs.js';
import type { Store } from './store.js';

export function refsPath(store: Store): string {
  return join(store.dir, REFS_FILE);
}

/** The table as gc left it, or an empty one with the reason a full mark is needed. */
export async function loadRefState(store: Store): Promise<{ state: RefState; fullReason: string | null }> {
  const path = refsPath(store);
  let buf: Buffer;
  try {
    buf = await readStoreFile(path);
  } catch (err) {
    if (isMissing(err)) return { state: emptyRefState(store.id), fullReason: 'no table' };
    if (hasCode(err, 'SV_ERR_STORE_FOREIGN_FILE')) return { state: emptyRefState(store.id), fullReason: 'corrupt table' };
    throw err;
  }
  let state: RefState;
  try {
    state = parseRefState(buf, path);
  } catch (err) {
    if (!hasCode(err, 'SV_ERR_STORE_CORRUPT_REFS')) throw err;
    return { state: emptyRefState(store.id), fullReason: 'corrupt table' };
  }
  if (state.store !== store.id) return { state: emptyRefState(store.id), fullReason: 'other store' };
  return { state, fullReason: null };
}

export async function saveRefState(store: Store, state: RefState): Promise<void> {
  await store.replaceFile(refsPath(store), 'store', encodeRefState(state));
}
