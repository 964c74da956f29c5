/**
 * Object Lock maintenance of a store on S3 (`shadowvault store extend-lock`, and `serve` after each gc): the
 * objects of the points the store keeps get their retention pushed to now + days, so that as long as a point
 * is kept nobody (not even this appliance, compromised) can delete what it needs; objects of deleted points
 * are left to expire, after which gc deletes them.
 *
 * Which objects: every manifest (points/<source>/<id>.json), every current index segment, every pack a
 * current segment names, and store.json. After a gc the index names only blobs live points use (gc removes
 * the others' entries), so the packs are those of kept points (a pack shared by a kept and a deleted point
 * is kept whole). Mutable objects (settings, gc's table, the lease) are replaced in place and carry no
 * retention. Objects already retained past the new date are left alone (S3 never shortens COMPLIANCE
 * retention); objects gone meanwhile (a concurrent gc) are counted as missing.
 * Requests: two per object (GetObjectRetention, PutObjectRetention), 8 in flight (backend/s3-lock.ts).
 */
import { SvError } from '../src/errors/index.js';
import { innermost } from './backend/wrap.js';
import { BlobIndex } from './index.js';
import { INDEX_ENTRY_SIZE, packFileName } from './layout.js';
import type { Store } from './store.js';

export interface ExtendLockResult {
  readonly location: string;
  readonly mode: 'COMPLIANCE' | 'GOVERNANCE';
  /** The new retention date (ISO). */
  readonly until: string;
  /** Objects looked at: manifests, index segments, packs, store.json. */
  readonly objects: number;
  readonly extended: number;
  readonly alreadyLater: number;
  readonly missing: number;
  readonly durationMs: number;
}

export async function extendLocks(store: Store, opts: { days?: number } = {}): Promise<ExtendLockResult> {
  const t0 = Date.now();
  const ref = store.ref;
  // Loaded here: the AWS SDK only for stores that need it.
  const [{ S3Backend }, { extendRetention }] = await Promise.all([import('./backend/s3.js'), import('./backend/s3-lock.js')]);
  const s3 = innermost(store.backend);
  if (ref.kind !== 's3' || !ref.objectLock || !(s3 instanceof S3Backend)) {
    throw new SvError('SV_ERR_BACKEND_BAD_URL', `${store.backend.location}: extend-lock needs a store on S3 with Object Lock (s3://BUCKET/PREFIX?lock=COMPLIANCE:DAYS&...)`, { location: store.backend.location });
  }
  const days = opts.days ?? ref.objectLock.days;
  if (!Number.isSafeInteger(days) || days < 1 || days > 36_500) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `extend-lock: days must be 1..36500, not ${days}`, { days });
  const keys = new Set<string>(['store.json']);
  for await (const o of store.backend.list('points/')) if (o.key.endsWith('.json')) keys.add(o.key);
  const { current } = await BlobIndex.listSegmentFiles(store.backend);
  for (const { name } of current.values()) keys.add(`index/${name}`);
  for (const seg of (await store.loadIndex()).segments) {
    for (let o = 0; o < seg.count * INDEX_ENTRY_SIZE; o += INDEX_ENTRY_SIZE) keys.add(`packs/${packFileName(seg.entries.readBigUInt64LE(o + 32))}`);
  }
  const until = new Date(Date.now() + days * 86_400_000);
  const r = await extendRetention(s3, keys, until);
  return {
    location: store.backend.location, mode: ref.objectLock.mode, until: until.toISOString(), objects: keys.size,
    extended: r.extended, alreadyLater: r.alreadyLater, missing: r.missing.length, durationMs: Date.now() - t0,
  };
}
