/**
 * Object Lock maintenance: push the retention date of objects still referenced forward, so that a recovery
 * point's objects stay undeletable as long as the point is kept. Run by the maintenance job with the keys the
 * live points reference (packs, index segments, manifests). S3 never shortens COMPLIANCE retention and
 * needs a bypass header to shorten GOVERNANCE; this function only ever extends: an object already retained
 * past `until` is left alone. Keys that no longer exist are counted as missing, not errors.
 */
import { GetObjectRetentionCommand, PutObjectRetentionCommand } from '@aws-sdk/client-s3';
import { hasCode, SvError } from '../../src/errors/index.js';
import { Limit } from './limit.js';
import type { S3Backend } from './s3.js';
import { s3Error } from './s3-errors.js';

export interface RetentionReport {
  readonly extended: number;
  readonly alreadyLater: number;
  readonly missing: string[];
}

export async function extendRetention(backend: S3Backend, keys: Iterable<string>, until: Date, concurrency = 8): Promise<RetentionReport> {
  const lock = backend.ref.objectLock;
  if (!lock) throw new SvError('SV_ERR_BACKEND_BAD_URL', `${backend.location} has no Object Lock setting (lock=COMPLIANCE:DAYS in the store URL): nothing to extend`, {});
  let extended = 0;
  let alreadyLater = 0;
  const missing: string[] = [];
  const limit = new Limit(concurrency);
  await Promise.all([...keys].map((key) => limit.run(async () => {
    const t = backend.forRetention(key);
    try {
      const cur = await t.client.send(new GetObjectRetentionCommand({ Bucket: t.bucket, Key: t.key })).catch((err: unknown) => {
        const coded = s3Error(err, { op: 'GetObjectRetention', bucket: t.bucket, key: t.key });
        // An object without retention answers NoSuchObjectLockConfiguration (AWS: 400 → IO; Ceph RGW 16: 404,
        // which would read as a missing object): treat it as none.
        if (hasCode(coded, 'SV_ERR_BACKEND_IO') || /ObjectLockConfiguration/u.test(String((err as { name?: unknown }).name ?? ''))) return { Retention: undefined };
        throw coded;
      });
      const curUntil = cur.Retention?.RetainUntilDate;
      if (curUntil && curUntil.getTime() >= until.getTime()) { alreadyLater++; return; }
      await t.client.send(new PutObjectRetentionCommand({ Bucket: t.bucket, Key: t.key, Retention: { Mode: lock.mode, RetainUntilDate: until } }));
      extended++;
    } catch (err) {
      const coded = s3Error(err, { op: 'PutObjectRetention', bucket: t.bucket, key: t.key });
      if (hasCode(coded, 'SV_ERR_BACKEND_NOT_FOUND')) { missing.push(key); return; }
      throw coded;
    }
  })));
  return { extended, alreadyLater, missing };
}
