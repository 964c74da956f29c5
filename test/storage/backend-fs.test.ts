/**
 * The folder backend (storage/backend/fs.ts) and the wrappers (retry, rate limit, cache, fault injection):
 * the shared contract suite over FsBackend and over wrapper stacks, then what only these can show: the folder
 * layout is byte for byte key → <dir>/key, temporaries of cut puts are invisible and removed by cleanup,
 * retries recover from transient faults and give up with a coded error naming the attempts, the rate limit
 * spaces requests, the cache serves reads and listings without the backend and refreshes when stale, and
 * store locations parse (folder paths, s3:// URLs) or are refused with SV_ERR_BACKEND_BAD_URL.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { FsBackend } from '../../storage/backend/fs.js';
import { openBackend, parseStoreUrl } from '../../storage/backend/open.js';
import type { Backend } from '../../storage/backend/types.js';
import { CacheBackend } from '../../storage/backend/wrap-cache.js';
import { FaultBackend } from '../../storage/backend/wrap-faults.js';
import { RateLimitBackend } from '../../storage/backend/wrap-rate.js';
import { RetryBackend } from '../../storage/backend/wrap-retry.js';
import { tempDir } from '../helpers/env.js';
import { backendContract, listAll } from './backend-contract.js';

async function expectCode(t: Test, p: Promise<unknown>, code: Parameters<typeof hasCode>[1]): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    t.ok(hasCode(err, code), `${code} (got ${(err as { code?: unknown }).code}: ${(err as Error).message})`);
    return err;
  }
  t.fail(`resolved, expected ${code}`);
  return undefined;
}

const fsMake = (wrap: (b: FsBackend, dir: string) => Backend) => async () => {
  const dir = tempDir(t, 'sv-backend-');
  return { backend: wrap(new FsBackend(join(dir, 'store')), dir), cleanup: async () => undefined };
};

const BIG = 1024 * 1024; // a local folder has no multipart: 1 MiB is enough here
await backendContract(t, 'FsBackend', fsMake((b) => b), { bigFileBytes: BIG });
await backendContract(t, 'retry(faults(FsBackend)) with transient faults and lost replies', fsMake((b) => new RetryBackend(new FaultBackend(b, [
  { method: 'put', nth: 2, kind: 'transient', times: 2 },
  { method: 'put', nth: 7, kind: 'lost-reply' },
  { method: 'put', nth: 12, kind: 'cut' },
  { method: 'get', nth: 3, kind: 'transient' },
  { method: 'getRange', nth: 2, kind: 'transient', times: 3 },
  { method: 'list', nth: 1, kind: 'transient' },
  { method: 'list', nth: 4, kind: 'lost-reply' },
  { method: 'stat', nth: 1, kind: 'transient' },
  { method: 'delete', nth: 1, kind: 'lost-reply' },
]), { baseDelayMs: 1, maxDelayMs: 5 })), { bigFileBytes: BIG });
await backendContract(t, 'rate(FsBackend) at 2000 requests/s', fsMake((b) => new RateLimitBackend(b, 2000)), { bigFileBytes: BIG });
await backendContract(t, 'cache(FsBackend)', fsMake((b, dir) => new CacheBackend(b, join(dir, 'cache'))), { bigFileBytes: BIG });
await backendContract(t, 'retry(rate(cache(FsBackend)))', fsMake((b, dir) => new RetryBackend(new RateLimitBackend(new CacheBackend(b, join(dir, 'cache')), 5000))), { bigFileBytes: BIG });

t.test('FsBackend keeps the folder layout: key K is the file <dir>/K', async (t) => {
  const dir = join(tempDir(t), 'store');
  const b = new FsBackend(dir);
  t.teardown(() => b.close());
  await b.put('packs/0000000000000001.pack', Buffer.from('pack bytes'));
  await b.replace('store.json', Buffer.from('{"format":"x"}'));
  await b.put('points/vm1/20260101T000000000Z-abcdef.json', Buffer.from('{}'));
  t.equal(readFileSync(join(dir, 'packs', '0000000000000001.pack'), 'utf8'), 'pack bytes');
  t.equal(readFileSync(join(dir, 'store.json'), 'utf8'), '{"format":"x"}');
  t.same(readdirSync(join(dir, 'points', 'vm1')), ['20260101T000000000Z-abcdef.json']);
  t.same((await listAll(b, '')).map((o) => o.key).sort(), ['packs/0000000000000001.pack', 'points/vm1/20260101T000000000Z-abcdef.json', 'store.json']);
  t.equal(b.ref.kind, 'fs');
  t.same(b.ref, { kind: 'fs', dir });
});

t.test('FsBackend: a {file} body is moved into place; planted FIFOs, links and folders are listed but refused', async (t) => {
  const root = tempDir(t);
  const b = new FsBackend(join(root, 'store'));
  t.teardown(() => b.close());
  const staging = join(root, 'store', 'packs', 'x.pack.tmp-staging');
  mkdirSync(join(root, 'store', 'packs'), { recursive: true });
  writeFileSync(staging, 'staged');
  await b.put('packs/00000000000000aa.pack', { file: staging });
  t.same(readdirSync(join(root, 'store', 'packs')), ['00000000000000aa.pack'], 'the staging file was renamed (linked and unlinked)');
  t.equal(spawnSync('mkfifo', [join(root, 'store', 'packs', '00000000000000bb.pack')]).status, 0, 'mkfifo');
  await expectCode(t, b.get('packs/00000000000000bb.pack'), 'SV_ERR_STORE_FOREIGN_FILE');
  await expectCode(t, b.getRange('packs/00000000000000bb.pack', 0, 1), 'SV_ERR_STORE_FOREIGN_FILE');
  symlinkSync('/etc/passwd', join(root, 'store', 'packs', '00000000000000cc.pack'));
  await expectCode(t, b.get('packs/00000000000000cc.pack'), 'SV_ERR_STORE_FOREIGN_FILE');
  await expectCode(t, b.stat('packs/00000000000000cc.pack'), 'SV_ERR_STORE_FOREIGN_FILE');
  mkdirSync(join(root, 'store', 'packs', '00000000000000dd.pack'));
  await expectCode(t, b.get('packs/00000000000000dd.pack'), 'SV_ERR_STORE_FOREIGN_FILE');
  t.same((await listAll(b, 'packs/')).map((o) => o.key).sort(), ['packs/00000000000000aa.pack', 'packs/00000000000000bb.pack', 'packs/00000000000000cc.pack', 'packs/00000000000000dd.pack'],
    'planted entries are listed (the store reports them) but never read');
});

t.test('a cut put leaves no object; cleanup removes its temporary once old enough', async (t) => {
  const dir = join(tempDir(t), 'store');
  const fs = new FsBackend(dir);
  const b = new FaultBackend(fs, [{ method: 'put', nth: 1, kind: 'cut' }]);
  t.teardown(() => b.close());
  await expectCode(t, b.put('packs/00000000000000dd.pack', randomBytes(4096)), 'SV_ERR_BACKEND_TRANSIENT');
  await expectCode(t, b.stat('packs/00000000000000dd.pack'), 'SV_ERR_BACKEND_NOT_FOUND');
  t.same(await listAll(b, 'packs/'), [], 'the temporary is not listed');
  const left = readdirSync(join(dir, 'packs'));
  t.equal(left.length, 1, 'a temporary was left');
  t.equal(await b.cleanup(60_000), 0, 'a young temporary is kept (a put may still be running)');
  const old = new Date(Date.now() - 120_000);
  utimesSync(join(dir, 'packs', left[0]!), old, old);
  t.equal(await b.cleanup(60_000), 1, 'an old one is removed');
  t.same(readdirSync(join(dir, 'packs')), []);
  t.equal(b.calls.put, 1);
});

t.test('retry: gives up after bounded attempts with a coded error; final errors are not retried', async (t) => {
  const dir = join(tempDir(t), 'store');
  const faults = new FaultBackend(new FsBackend(dir), [{ method: 'get', nth: 1, kind: 'transient', times: 100 }, { method: 'stat', nth: 1, kind: 'final' }]);
  const retries: number[] = [];
  const b = new RetryBackend(faults, { attempts: 4, baseDelayMs: 1, maxDelayMs: 4, onRetry: (i) => retries.push(i.attempt) });
  t.teardown(() => b.close());
  await b.put('bad.json', Buffer.from('[]'));
  const err = await expectCode(t, b.get('bad.json'), 'SV_ERR_BACKEND_GAVE_UP') as { details: { attempts: number }; message: string; cause: unknown };
  t.equal(err.details.attempts, 4, 'details.attempts');
  t.match(err.message, /failed 4 times/, 'the message names the attempts');
  t.ok(hasCode(err.cause, 'SV_ERR_BACKEND_TRANSIENT'), 'the cause is the last transient error');
  t.same(retries, [1, 2, 3]);
  t.equal(faults.calls.get, 4, 'exactly 4 requests');
  await expectCode(t, b.stat('bad.json'), 'SV_ERR_BACKEND_FAULT');
  t.equal(faults.calls.stat, 1, 'a final error is not retried');
  const other = new RetryBackend(new FaultBackend(new FsBackend(dir), [{ method: 'put', nth: 1, kind: 'lost-reply' }]), { baseDelayMs: 1 });
  await b.put('packs/00000000000000ee.pack', Buffer.from('someone else'));
  await expectCode(t, other.put('packs/00000000000000ee.pack', Buffer.from('mine')), 'SV_ERR_BACKEND_EXISTS');
  await other.put('packs/00000000000000ef.pack', Buffer.from('mine'));
  t.same(await other.get('packs/00000000000000ef.pack'), Buffer.from('mine'), 'a lost reply is recognised as our own put');
});

t.test('rate limit spaces requests (token bucket)', async (t) => {
  const b = new RateLimitBackend(new FsBackend(join(tempDir(t), 'store')), 50, 1);
  t.teardown(() => b.close());
  const start = Date.now();
  await Promise.all(Array.from({ length: 11 }, (_, i) => b.replace(`sources/s${i}.json`, Buffer.from('{}'))));
  const elapsed = Date.now() - start;
  // 1 token at once, then 10 at 50/s: at least 200 ms whatever the machine's speed (a lower bound, not a timing)
  t.ok(elapsed >= 190, `11 requests at 50/s with a burst of 1 took ${elapsed} ms (>= 200 expected)`);
});

t.test('cache: reads and fresh listings are served without the backend; stale listings refresh', async (t) => {
  const root = tempDir(t);
  const fs = new FsBackend(join(root, 'store'));
  const counted = new FaultBackend(fs);
  const cache = new CacheBackend(counted, join(root, 'cache'), { ttlMs: 60_000 });
  t.teardown(() => cache.close());
  await cache.put('points/vm1/p1.json', Buffer.from('{"a":1}'));
  await fs.put('points/vm1/p2.json', Buffer.from('{"a":2}')); // written by someone else (a second appliance)
  await fs.put('index/00000000000000000001-000000.idx', Buffer.from('segment'));
  t.same((await listAll(cache, 'points/')).map((o) => o.key).sort(), ['points/vm1/p1.json', 'points/vm1/p2.json'], 'first listing refreshes from the backend');
  const calls = { ...counted.calls };
  t.same(await cache.get('points/vm1/p2.json'), Buffer.from('{"a":2}'), 'the refresh fetched the copy');
  await fs.put('points/vm1/p3.json', Buffer.from('{"a":3}'));
  t.equal((await listAll(cache, 'points/vm1/')).length, 2, 'a fresh listing comes from the cache (p3 by someone else not seen yet)');
  t.same(counted.calls, calls, 'no request reached the backend');
  await cache.put('points/vm1/p4.json', Buffer.from('{"a":4}'));
  t.equal((await listAll(cache, 'points/vm1/')).length, 3, 'our own put is in the fresh listing at once');
  await cache.delete('points/vm1/p1.json');
  t.same((await listAll(cache, 'points/')).map((o) => o.key).sort(), ['points/vm1/p2.json', 'points/vm1/p4.json'], 'our own delete too');
  const stale = new CacheBackend(counted, join(root, 'cache'), { ttlMs: 0 });
  t.same((await listAll(stale, 'points/')).map((o) => o.key).sort(), ['points/vm1/p2.json', 'points/vm1/p3.json', 'points/vm1/p4.json'], 'a stale listing refreshes');
  await fs.delete('points/vm1/p2.json');
  t.same((await listAll(stale, 'points/')).map((o) => o.key).sort(), ['points/vm1/p3.json', 'points/vm1/p4.json'], 'a copy of a deleted object is dropped');
  t.same((await listAll(cache, 'index/')).map((o) => o.key), ['index/00000000000000000001-000000.idx'], 'index kind');
  const before = counted.calls.getRange + counted.calls.get;
  t.same(await cache.getRange('index/00000000000000000001-000000.idx', 2, 3), Buffer.from('gme'), 'ranged read from the copy');
  t.equal(counted.calls.getRange + counted.calls.get, before, 'without a request');
});

t.test('store locations: folder paths and s3:// URLs', async (t) => {
  t.same(parseStoreUrl('store', '/srv'), { kind: 'fs', dir: '/srv/store' });
  t.same(parseStoreUrl('/var/lib/sv/store/'), { kind: 'fs', dir: '/var/lib/sv/store' });
  t.same(parseStoreUrl('s3://backups/site-a/vms?endpoint=http://127.0.0.1:7480&region=eu-1'), {
    kind: 's3', bucket: 'backups', prefix: 'site-a/vms/', endpoint: 'http://127.0.0.1:7480', region: 'eu-1',
    forcePathStyle: true, rateLimit: 0, objectLock: null, readOnly: false,
  });
  t.same(parseStoreUrl('s3://backups'), {
    kind: 's3', bucket: 'backups', prefix: '', endpoint: null, region: 'us-east-1', forcePathStyle: false, rateLimit: 0, objectLock: null, readOnly: false,
  });
  t.match(parseStoreUrl('s3://b-1.x/p?lock=COMPLIANCE:30&rate=100&readOnly=true&pathStyle=true'), {
    objectLock: { mode: 'COMPLIANCE', days: 30 }, rateLimit: 100, readOnly: true, forcePathStyle: true,
  });
  for (const bad of ['', 'ftp://host/x', 's3://AB/x', 's3://key:secret@bucket/x', 's3://bucket/x?endpoint=ftp://h', 's3://bucket/x?color=red',
    's3://bucket/../x', 's3://bucket/x?lock=COMPLIANCE', 's3://bucket/x?rate=-1', 's3://bucket:9000/x', 's3://bucket/x?region=a&region=b']) {
    let err: unknown;
    try {
      parseStoreUrl(bad);
    } catch (e) {
      err = e;
    }
    t.ok(hasCode(err, 'SV_ERR_BACKEND_BAD_URL'), `${JSON.stringify(bad)} refused: ${(err as Error | undefined)?.message}`);
    t.notMatch(String((err as Error | undefined)?.message), /secret/, 'credentials are never echoed');
  }
  const fs = await openBackend(parseStoreUrl(join(tempDir(t), 'store')));
  t.equal(fs.ref.kind, 'fs');
  await fs.close();
});
