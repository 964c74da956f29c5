/**
 * The S3 backend on a real Ceph RADOS Gateway (a throwaway one-node cluster, test/helpers/ceph.ts; ONE cluster
 * for the whole file): the shared contract suite over S3Backend (create-only by If-None-Match: *, which RGW
 * honours) and over retry(S3Backend) with HEAD-before-PUT; the S3 checks (multipart, cleanup of incomplete
 * uploads, wrong secret → AUTH, missing bucket, the writer lease, faults through a proxy with RGW checking
 * Content-MD5); and Object Lock on a bucket created with it: every put retained, delete → LOCKED and the
 * object stays, extendRetention pushes dates forward, a bucket without Object Lock is refused when asked.
 * Needs: apt-get install -y ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base (fails without, never skips).
 */
import { GetObjectRetentionCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { extendRetention } from '../../storage/backend/s3-lock.js';
import { RetryBackend } from '../../storage/backend/wrap-retry.js';
import { startCeph } from '../helpers/ceph.js';
import { backendContract } from './backend-contract.js';
import { expectCode, listAll, openOn, s3Checks } from './backend-s3-checks.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const ceph = await startCeph(t);
await ceph.bucket('contract');
await ceph.bucket('checks');

await backendContract(t, 'S3Backend on Ceph RGW', async () => ({ backend: await openOn(ceph, ceph.ref('contract', 'a/')), cleanup: async () => undefined }));
await backendContract(t, 'retry(S3Backend) on Ceph RGW, create-only by HEAD-before-PUT', async () => ({
  backend: new RetryBackend(await openOn(ceph, ceph.ref('contract', 'b/'), { conditionalWrites: false }), { baseDelayMs: 5 }),
  cleanup: async () => undefined,
}));
await s3Checks(t, ceph, 'checks', { listsUploads: true, checksSignatures: true });

t.test('Object Lock: retained puts, LOCKED deletes, retention extended', async (t) => {
  await ceph.bucket('locked', { objectLock: true });
  const lock = { mode: 'COMPLIANCE', days: 1 } as const;
  await expectCode(t, openOn(ceph, ceph.ref('checks', 'nolock/', { objectLock: lock })), 'SV_ERR_BACKEND_OBJECT_LOCK', 'a bucket without Object Lock, asked for it');
  const b = await openOn(ceph, ceph.ref('locked', 'v/', { objectLock: lock }));
  t.teardown(() => b.close());
  const before = Date.now();
  await b.put('packs/00000000000000d1.pack', Buffer.from('retained bytes'));
  await b.replace('store.json', Buffer.from('{"v":1}'));
  await b.replace('store.json', Buffer.from('{"v":2}'));
  const raw = ceph.client();
  const ret = await raw.send(new GetObjectRetentionCommand({ Bucket: 'locked', Key: 'v/packs/00000000000000d1.pack' }));
  t.equal(ret.Retention?.Mode, 'COMPLIANCE', 'the put carries COMPLIANCE retention');
  const until = ret.Retention?.RetainUntilDate?.getTime() ?? 0;
  t.ok(until >= before + 86_400_000 - 5000 && until <= Date.now() + 86_400_000 + 5000, 'until now + 1 day');
  const err = await expectCode(t, b.delete('packs/00000000000000d1.pack'), 'SV_ERR_BACKEND_LOCKED', 'delete of a retained object');
  t.match((err as Error).message, /until \d{4}-/u, 'the message names the retention date');
  t.same(await b.get('packs/00000000000000d1.pack'), Buffer.from('retained bytes'), 'it stays');
  const later = new Date(Date.now() + 3 * 86_400_000);
  const report = await extendRetention(b, ['packs/00000000000000d1.pack', 'packs/00000000000000ff.pack'], later);
  t.same(report, { extended: 1, alreadyLater: 0, missing: ['packs/00000000000000ff.pack'] }, 'extended one, one missing');
  const ret2 = await raw.send(new GetObjectRetentionCommand({ Bucket: 'locked', Key: 'v/packs/00000000000000d1.pack' }));
  t.ok(Math.abs((ret2.Retention?.RetainUntilDate?.getTime() ?? 0) - later.getTime()) < 1000, `the new date is stored (${ret2.Retention?.RetainUntilDate?.toISOString()})`);
  t.same(await extendRetention(b, ['packs/00000000000000d1.pack'], new Date(Date.now() + 86_400_000)), { extended: 0, alreadyLater: 1, missing: [] }, 'never shortened');
  // Mutable objects carry no retention: deleting one removes every version (no delete marker left behind).
  await b.delete('store.json');
  const versions = await raw.send(new ListObjectVersionsCommand({ Bucket: 'locked', Prefix: 'v/store.json' }));
  t.same([...versions.Versions ?? [], ...versions.DeleteMarkers ?? []], [], 'all versions of store.json removed');
  t.same((await listAll(b, '')).map((o) => o.key).sort(), ['lease/writer.json', 'packs/00000000000000d1.pack'], 'the locked pack and the lease remain');
});
