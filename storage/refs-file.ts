/**
 * Reading and writing gc's reference table file (`<store>/gc-refs.bin`, format in refs.ts and layout.ts). gc
 * only; the gc lock is held. Loading never fails the run: a missing, corrupt or foreign table means a full mark,
 * and the reason is reported in gc's result.
 */
import { hasCode } from '../src/errors/index.js';
import { REFS_FILE } from './layout.js';
import { emptyRefState, encodeRefState, parseRefState, type RefState } from './refs.js';
import { describeKey } from './backend/keys.js';
import type { Store } from './store.js';

export function refsPath(store: Store): string {
  return describeKey(store.backend, REFS_FILE);
}

/** The table as gc left it, or an empty one with the reason a full mark is needed. */
export async function loadRefState(store: Store): Promise<{ state: RefState; fullReason: string | null }> {
  const path = refsPath(store);
  let buf: Buffer;
  try {
    buf = await store.backend.get(REFS_FILE);
  } catch (err) {
    if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) return { state: emptyRefState(store.id), fullReason: 'no table' };
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
  await store.replaceObject(REFS_FILE, 'store', encodeRefState(state));
}
