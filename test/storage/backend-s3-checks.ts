/**
 * What only an S3 backend can show, run against every S3 server the tests start (s3rver in
 * backend-s3rver.test.ts, Ceph RGW in backend-ceph.test.ts): multipart puts verified, incomplete uploads
 * invisible and aborted by cleanup, coded refusals (wrong secret, missing bucket, no credentials leaked), the
 * writer lease (second writer refused, read-only allowed, takeover of an expired or own lease), and through a
 * fault proxy: a connection cut mid-upload leaves no object, 5xx/SlowDown are TRANSIENT and retried by the
 * retry wrapper, a bit flipped on the way is caught (CHECKSUM or the server's BadDigest), never stored.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import type { Test } from 'tap';
import { hasCode, type SvErrorCode } from '../../src/errors/index.js';
import { S3Backend, type S3Options } from '../../storage/backend/s3.js';
import type { Backend, ObjectInfo, S3BackendRef } from '../../storage/backend/types.js';
import { RetryBackend } from '../../storage/backend/wrap-retry.js';
import { tempDir } from '../helpers/env.js';
import { startFaultProxy } from '../helpers/s3-fault-proxy.js';
import type { S3Server } from '../helpers/s3rver.js';

/** Small parts, so a few MiB exercise multipart (S3's minimum part is 5 MiB). */
export const SMALL_PARTS: S3Options['upload'] = { multipartThreshold: 5 << 20, partSize: 5 << 20, concurrency: 3 };

export async function listAll(b: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of b.list(prefix)) out.push(o);
  return out;
}

export async function expectCode(t: Test, p: Promise<unknown>, code: SvErrorCode, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    t.ok(hasCode(err, code), `${what}: ${code} (got ${(err as { code?: unknown }).code}: ${(err as Error).message})`);
    return err;
  }
  t.fail(`${what}: resolved, expected ${code}`);
  return undefined;
}

/** Open a backend on `server` with its credentials (and test-sized parts) unless `opts` says otherwise. */
export function openOn(server: S3Server, ref: S3BackendRef, opts: S3Options = {}): Promise<S3Backend> {
  return S3Backend.open(ref, { credentials: server.credentials, upload: SMALL_PARTS, applianceId: 'appliance-a', ...opts });
}

async function incompleteUploads(server: S3Server, bucket: string, prefix: string): Promise<string[]> {
  const r = await server.client().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (r.Uploads ?? []).map((u) => u.Key ?? '');
}

/** What the server under test does (s3rver lacks some of S3; Ceph RGW has all of it). */
export interface ServerCaps {
  /** ListMultipartUploads works (s3rver: NotImplemented). */
  readonly listsUploads: boolean;
  /** A wrong secret key is refused (s3rver does not verify signatures reliably). */
  readonly checksSignatures: boolean;
}

export async function s3Checks(t: Test, server: S3Server, bucket: string, caps: ServerCaps): Promise<void> {
  await t.test('multipart put: parts in flight, verified, whole', async (t) => {
    const b = await openOn(server, server.ref(bucket, 'mp/'));
    t.teardown(() => b.close());
    const file = join(tempDir(t), 'pack');
    const body = randomBytes(12 << 20); // 3 parts of ≤ 5 MiB
    writeFileSync(file, body);
    await b.put('packs/00000000000000aa.pack', { file });
    t.equal((await b.stat('packs/00000000000000aa.pack')).size, body.length, 'size');
    t.ok((await b.get('packs/00000000000000aa.pack')).equals(body), 'content');
    const ranges = await Promise.all(Array.from({ length: 24 }, (_, i) => b.getRange('packs/00000000000000aa.pack', i * (512 << 10), 512 << 10)));
    t.ok(Buffer.concat(ranges).equals(body), '24 ranged GETs in flight read it back');
    await expectCode(t, b.put('packs/00000000000000aa.pack', { file }), 'SV_ERR_BACKEND_EXISTS', 'a second multipart put');
    if (caps.listsUploads) t.same(await incompleteUploads(server, bucket, 'mp/'), [], 'the refused put left no incomplete upload');
  });

  if (!caps.listsUploads) t.comment('this server has no ListMultipartUploads: cleanup of incomplete uploads is checked on Ceph RGW (backend-ceph.test.ts)');
  else await t.test('incomplete multipart uploads: never listed, aborted by cleanup after the cutoff', async (t) => {
    const b = await openOn(server, server.ref(bucket, 'cl/'));
    t.teardown(() => b.close());
    const raw = server.client();
    const up = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'cl/packs/00000000000000bb.pack' }));
    await raw.send(new UploadPartCommand({ Bucket: bucket, Key: 'cl/packs/00000000000000bb.pack', UploadId: up.UploadId, PartNumber: 1, Body: randomBytes(1000) }));
    t.same(await listAll(b, 'packs/'), [], 'not listed');
    await expectCode(t, b.get('packs/00000000000000bb.pack'), 'SV_ERR_BACKEND_NOT_FOUND', 'not readable');
    t.equal(await b.cleanup(3_600_000), 0, 'younger than the cutoff: kept');
    t.same(await incompleteUploads(server, bucket, 'cl/'), ['cl/packs/00000000000000bb.pack'], 'still there');
    t.equal(await b.cleanup(0), 1, 'cleanup(0) aborts it');
    t.same(await incompleteUploads(server, bucket, 'cl/'), [], 'gone');
  });

  await t.test('coded refusals; no credential in any message', async (t) => {
    const secret = server.credentials.secretAccessKey;
    const wrong = `${secret.slice(0, -4)}XXXX`;
    const errs = [await expectCode(t, openOn(server, server.ref('no-such-bucket-here', 'x/')), 'SV_ERR_BACKEND_NO_BUCKET', 'a missing bucket')];
    if (caps.checksSignatures) {
      errs.push(
        await expectCode(t, openOn(server, server.ref(bucket, 'auth/'), { credentials: { accessKeyId: server.credentials.accessKeyId, secretAccessKey: wrong } }), 'SV_ERR_BACKEND_AUTH', 'a wrong secret key'),
        await expectCode(t, openOn(server, server.ref(bucket, 'auth/'), { credentials: { accessKeyId: 'NOSUCHKEY0000000', secretAccessKey: wrong } }), 'SV_ERR_BACKEND_AUTH', 'an unknown access key'),
      );
    } else {
      t.comment('this server does not check signatures: wrong keys are checked on Ceph RGW (backend-ceph.test.ts)');
    }
    for (const e of errs) {
      const text = `${(e as Error)?.message} ${JSON.stringify((e as { details?: unknown })?.details)}`;
      t.notOk(text.includes(secret) || text.includes(wrong), `no secret in: ${(e as Error)?.message}`);
      t.notOk(text.includes(server.credentials.accessKeyId), 'no access key id either');
    }
  });

  await t.test('one writer: lease held, read-only allowed, takeover of own or expired lease', async (t) => {
    const ref = server.ref(bucket, 'one/');
    const a = await openOn(server, ref, { applianceId: 'appliance-a' });
    await a.put('points/vm/p1.json', Buffer.from('{"p":1}'));
    const held = await expectCode(t, openOn(server, ref, { applianceId: 'appliance-b' }), 'SV_ERR_BACKEND_LEASE_HELD', 'a second appliance writing');
    t.equal((held as { details?: { holder?: string } }).details?.holder, 'appliance-a', 'names the holder');
    t.match((held as Error).message, /expires \d{4}-/u, 'and the expiry');
    const ro = await openOn(server, { ...ref, readOnly: true }, { applianceId: 'appliance-b' });
    t.same((await listAll(ro, 'points/')).map((o) => o.key), ['points/vm/p1.json'], 'read-only lists');
    t.same(await ro.get('points/vm/p1.json'), Buffer.from('{"p":1}'), 'and reads');
    await expectCode(t, ro.put('points/vm/p2.json', Buffer.from('x')), 'SV_ERR_BACKEND_READ_ONLY', 'read-only put');
    await expectCode(t, ro.replace('store.json', Buffer.from('x')), 'SV_ERR_BACKEND_READ_ONLY', 'read-only replace');
    await expectCode(t, ro.delete('points/vm/p1.json'), 'SV_ERR_BACKEND_READ_ONLY', 'read-only delete');
    await ro.close();
    // The same appliance after a crash (its lease never released) takes over at once.
    const again = await openOn(server, ref, { applianceId: 'appliance-a' });
    await again.close();
    await a.close();
    // An expired lease of another appliance is taken over.
    await server.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'one/lease/writer.json', Body: JSON.stringify({ applianceId: 'appliance-c', host: 'gone', pid: 1, token: 'x', acquiredMs: 0, expiresMs: Date.now() - 1000 }) }));
    const b = await openOn(server, ref, { applianceId: 'appliance-b' });
    await b.put('points/vm/p2.json', Buffer.from('{"p":2}'));
    await b.close();
    t.same((await listAll(await openOn(server, { ...ref, readOnly: true }), 'lease/')).map((o) => o.key), [], 'close released the lease');
    // A lease taken over behind the writer's back (clocks, a forced takeover): its next writes stop.
    const c = await openOn(server, ref, { applianceId: 'appliance-a', leaseTtlMs: 3000 });
    t.teardown(() => c.close());
    await server.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'one/lease/writer.json', Body: JSON.stringify({ applianceId: 'appliance-d', host: 'other', pid: 2, token: 'y', acquiredMs: Date.now(), expiresMs: Date.now() + 600_000 }) }));
    await new Promise((r) => setTimeout(r, 1800)); // a renewal (every ttl/3) sees it
    await expectCode(t, c.put('points/vm/p3.json', Buffer.from('x')), 'SV_ERR_BACKEND_LEASE_LOST', 'a write after the lease was taken over');
  });

  await t.test('faults through a proxy: cut mid-upload, 5xx/SlowDown, a flipped bit', async (t) => {
    const proxy = await startFaultProxy(t, server.endpoint);
    const ref = { ...server.ref(bucket, 'fault/'), endpoint: proxy.endpoint };
    const raw = await openOn(server, ref);
    t.teardown(() => raw.close());
    const retry = new RetryBackend(raw, { baseDelayMs: 5, maxDelayMs: 50 });
    const file = join(tempDir(t), 'pack');
    const body = randomBytes(11 << 20);
    writeFileSync(file, body);

    proxy.add({ method: 'PUT', query: 'partNumber=2', action: { kind: 'drop', afterBytes: 1 << 20 }, times: 1 });
    await expectCode(t, raw.put('packs/00000000000000c1.pack', { file }), 'SV_ERR_BACKEND_TRANSIENT', 'a connection cut in part 2');
    await expectCode(t, raw.stat('packs/00000000000000c1.pack'), 'SV_ERR_BACKEND_NOT_FOUND', 'no object after the cut');
    t.same(await listAll(raw, 'packs/'), [], 'nothing listed');

    proxy.add({ method: 'PUT', query: 'partNumber=1', action: { kind: 'drop', afterBytes: 4096 }, times: 1 });
    proxy.add({ method: 'PUT', action: { kind: 'status', status: 503, code: 'SlowDown' }, times: 2 });
    await retry.put('packs/00000000000000c1.pack', { file });
    t.ok((await retry.get('packs/00000000000000c1.pack')).equals(body), 'retried through a cut and two SlowDowns: stored whole');

    proxy.add({ method: 'GET', action: { kind: 'status', status: 500, code: 'InternalError' }, times: 2 });
    t.ok((await retry.getRange('packs/00000000000000c1.pack', 1000, 5000)).equals(body.subarray(1000, 6000)), 'GET retried through 500s');
    proxy.add({ method: 'GET', action: { kind: 'status', status: 503, code: 'ServiceUnavailable' } });
    await expectCode(t, retry.get('packs/00000000000000c1.pack'), 'SV_ERR_BACKEND_GAVE_UP', 'a server that stays down: the retry wrapper gives up, coded');
    proxy.clear();

    proxy.add({ method: 'PUT', action: { kind: 'corrupt', atByte: 100 }, times: 1 });
    const err = await raw.put('packs/00000000000000c2.pack', randomBytes(4096)).then(() => null, (e: unknown) => e);
    t.ok(hasCode(err, 'SV_ERR_BACKEND_CHECKSUM'), `a flipped bit: CHECKSUM (got ${(err as Error | null)?.message})`);
    await expectCode(t, raw.stat('packs/00000000000000c2.pack'), 'SV_ERR_BACKEND_NOT_FOUND', 'the damaged object is not kept');
    t.ok(proxy.requests.some((r) => r.fault === 'corrupt'), 'the fault fired');
  });
}
