/**
 * The S3 backend on a real Ceph RADOS Gateway (a throwaway one-node cluster, test/helpers/ceph.ts; ONE cluster
 * for the whole file): the shared contract suite over S3Backend (create-only by If-None-Match: *, which RGW
 * honours) and over retry(S3Backend) with HEAD-before-PUT; the S3 checks (multipart, cleanup of incomplete
 * uploads, wrong secret → AUTH, missing bucket, the writer lease, faults through a proxy with RGW checking
 * Content-MD5); and Object Lock on a bucket created with it: every put retained, delete → LOCKED and the
 * object stays, extendRetention pushes dates forward, a bucket without Object Lock is refused when asked;
 * kill -9 of a process putting packs at random moments (20 rounds; SHADOWVAULT_SOAK=1: 100): every put that
 * resolved is there whole, no listed object is partial, cleanup aborts the incomplete uploads left behind.
 * Needs: apt-get install -y ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base (fails without, never skips).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { GetObjectRetentionCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { extendRetention } from '../../storage/backend/s3-lock.js';
import { RetryBackend } from '../../storage/backend/wrap-retry.js';
import { startCeph } from '../helpers/ceph.js';
import { childEnv } from '../helpers/env.js';
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

/** `rounds` children putting packs under `prefix`, each killed with SIGKILL at a random moment; what they said. */
async function killRounds(t: Test, prefix: string, rounds: number): Promise<{ expected: Map<string, string>; done: Set<string> }> {
  const ref = ceph.ref('crash', prefix);
  const child = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 's3-put-child.js');
  const expected = new Map<string, string>(); // key → sha256 of the body a put started with
  const done = new Set<string>();
  for (let round = 0; round < rounds; round++) {
    const proc = spawn(process.execPath, [child, JSON.stringify({ ref, credentials: ceph.credentials, round, size: 6 << 20 })], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    let out = '';
    let err = '';
    proc.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    proc.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    // Kill at a random moment after its first put started (the open itself is not what is tested here).
    for (let i = 0; i < 800 && !out.includes('start ') && proc.exitCode === null; i++) await sleep(25);
    await sleep(Math.floor(Math.random() * 1000));
    proc.kill('SIGKILL');
    await exited;
    if (!out.includes('start ')) t.fail(`${prefix} round ${round}: the child never started a put: ${err.slice(0, 500)}`);
    for (const line of out.split('\n')) {
      const [what, key, sha] = line.split(' ');
      if (what === 'start' && key && sha) expected.set(key, sha);
      if (what === 'done' && key) done.add(key);
    }
  }
  return { expected, done };
}

t.test('kill -9 during puts: finished objects intact, no partial object, leftovers cleaned', async (t) => {
  const rounds = process.env.SHADOWVAULT_SOAK ? 100 : 20;
  await ceph.bucket('crash');
  // Two writers on two prefixes (two stores) at once, half the rounds each: the same kills in half the time.
  const prefixes = ['k0/', 'k1/'];
  const results = await Promise.all(prefixes.map((p) => killRounds(t, p, rounds / 2)));
  for (const [i, { expected, done }] of results.entries()) {
    const b = await openOn(ceph, ceph.ref('crash', prefixes[i]!), { applianceId: 'crash-test' });
    t.teardown(() => b.close());
    const listed = await listAll(b, 'packs/');
    const listedKeys = new Set(listed.map((o) => o.key));
    for (const key of done) if (!listedKeys.has(key)) t.fail(`${key}: its put resolved but it is not listed`);
    let whole = 0;
    for (const o of listed) {
      const sha = createHash('sha256').update(await b.get(o.key)).digest('hex');
      if (sha === expected.get(o.key)) whole++;
      else t.fail(`${o.key}: listed, but not the body its put started with (a partial object)`);
    }
    t.ok(done.size >= rounds / 4, `${prefixes[i]}: puts finished across the rounds (${done.size} done, ${expected.size} started, ${rounds / 2} kills)`);
    t.equal(whole, listed.length, `${prefixes[i]}: every listed object (${whole}) is whole, every resolved put (${done.size}) is there`);
    const removed = await b.cleanup(0);
    const left = await ceph.client().send(new ListMultipartUploadsCommand({ Bucket: 'crash', Prefix: prefixes[i] }));
    t.same(left.Uploads ?? [], [], `${prefixes[i]}: cleanup aborted the ${removed} incomplete uploads the kills left`);
  }
});
