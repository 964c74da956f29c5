/**
 * The object store's clock against this machine's, for gc's orphan rule (gc.ts). Objects carry the store's
 * creation time (S3 LastModified: the server's clock, whole seconds), running backups the local time they
 * started; gc compares the two. Instead of allowing a fixed clock skew (session 7: 15 minutes, which is how long
 * a killed backup's packs stayed), gc measures the offset when it needs it: it writes one small object and
 * reads back its creation time.
 *
 * Bound: the write happened at a local time in [l0, l1] (before the request, after the answer), i.e. at server
 * time in [l0 + offset, l1 + offset]; the store truncates to the second, so created ∈ (S - 1000, S]. Hence
 * offset ≥ created - l1: `low`. A pack a backup created at local time ≥ T (after it registered as running) has
 * server time ≥ T + offset ≥ T + low, and a creation time > T + low - 1000. gc deletes an unnamed pack only
 * when its creation time is below T + low - 1000 - ORPHAN_GRACE_S3_MS, so no pack of a running backup is ever
 * below it; the remaining grace covers a clock step (NTP) of either side between the probe and the listing.
 * The probe object is a settings object (`lease/clock.json`), replaced at each gc, never listed by the store.
 */
import type { Backend } from './backend/types.js';

/** Allowance for a clock step between the probe and the listing (see the header). */
export const ORPHAN_GRACE_S3_MS = 5_000;

const PROBE_KEY = 'lease/clock.json';

/**
 * A lower bound of (store clock - local clock) in ms, less the store's 1-second truncation: add it to a local
 * time T to get a store time that no object created at or after T can be below.
 */
export async function storeClockLowerBound(backend: Backend): Promise<number> {
  const l0 = Date.now();
  await backend.replace(PROBE_KEY, Buffer.from(JSON.stringify({ probe: 'gc clock', at: new Date(l0).toISOString() })));
  const l1 = Date.now();
  const { createdMs } = await backend.stat(PROBE_KEY);
  return createdMs - l1 - 1000;
}
