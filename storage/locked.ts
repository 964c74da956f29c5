/**
 * Deletes that respect Object Lock. On a bucket with Object Lock every immutable object (pack, index segment,
 * manifest) is written with a retention date, and S3 refuses to delete it before then
 * (Backend.delete throws SV_ERR_BACKEND_LOCKED and the object stays). prune and gc (and the index compaction
 * of a backup commit) then skip it and report it (`lockedSkipped`) instead of failing: what they could delete
 * they delete, the rest is deleted by a later run once its retention has passed. Callers keep their invariants
 * with a locked object in place (compact.ts: a segment that stays is superseded by a newer generation; gc.ts:
 * a pack that stays is an orphan no segment names).
 */
import { hasCode } from '../src/errors/index.js';
import type { Backend } from './backend/types.js';

/** Called with each key that Object Lock kept. */
export type OnLocked = (key: string) => void;

/** Delete `key`; false (and the object stays) when Object Lock retention keeps it. Other errors are thrown. */
export async function deleteUnlessLocked(backend: Backend, key: string, onLocked?: OnLocked): Promise<boolean> {
  try {
    await backend.delete(key);
    return true;
  } catch (err) {
    if (!hasCode(err, 'SV_ERR_BACKEND_LOCKED')) throw err;
    onLocked?.(key);
    return false;
  }
}
