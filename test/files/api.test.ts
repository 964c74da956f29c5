/**
 * The API's item-level restore routes (src/api/routes/files.ts) on an appliance with the real engine: a source
 * whose disk is the GPT test disk (FAT16 + ext4 + XFS + LVM) made a VHDX by qemu-img, backed up by a job. Checks
 * roles (listing is viewer, data is operator), volumes and listings, a file download with Range (206, 416),
 * a folder as tar (read back with the system tar), a restore job of items into a restore root (and a target
 * outside the roots refused), 404 for a missing path, and that a download in progress holds the point.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import { closePool } from '../../src/pool/index.js';
import { prune } from '../../src/sync/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { startJob } from '../regressions/issue9-helpers.js';
import { makeTestDisk } from './images.js';
import { listHolds } from '../../storage/holds.js';
import { Store } from '../../storage/store.js';

t.teardown(() => closePool());

t.test('files routes', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const tar = requireTool('tar');
  const dir = tempDir(t, 'sv-files-api-');
  const disk = makeTestDisk(dir);
  const data = join(dir, 'data');
  mkdirSync(join(data, 'sources'), { recursive: true });
  const vhdx = join(data, 'sources', 'vm-disk0.vhdx');
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vhdx', disk.raw, vhdx]);
  const store = join(data, 'store');
  const a = await startTestAppliance(t, { dir: data, deps: { engine: new SyncEngine(store) } });
  const add = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm', disks: [{ name: 'disk0', path: vhdx }] });
  t.equal(add.statusCode, 201, add.body);
  const sourceId = (add.json() as { id: string }).id;
  const backup = await a.appliance.queue.waitFor((await startJob(a, { kind: 'backup', sourceId })).id);
  t.equal(backup.state, 'succeeded', JSON.stringify(backup.error));
  // A second point, so the first (browsed below) is one prune may delete.
  t.equal((await a.appliance.queue.waitFor((await startJob(a, { kind: 'backup', sourceId })).id)).state, 'succeeded');
  const pointId = ((await a.call('viewer', 'GET', `/api/v1/sources/${sourceId}/points`)).json() as Array<{ id: string }>)[0]!.id;
  const base = `/api/v1/sources/${sourceId}/points/${pointId}/disks/disk0`;

  await t.test('volumes and listings (viewer)', async (t) => {
    const v = await a.call('viewer', 'GET', `${base}/volumes`);
    t.equal(v.statusCode, 200, v.body);
    const vols = (v.json() as { volumes: Array<{ index: number; fs: { type: string } | null; error?: { code: string } }> }).volumes;
    t.same(vols.map((x) => x.fs?.type ?? x.error?.code), ['fat16', 'ext4', 'SV_ERR_VOLUME_UNSUPPORTED', 'SV_ERR_VOLUME_UNSUPPORTED']);
    const ls = await a.call('viewer', 'GET', `${base}/volumes/auto/files?path=/docs`);
    t.equal(ls.statusCode, 200, ls.body);
    t.match(ls.json(), { volume: 2, fs: 'ext4', path: '/docs', type: 'directory' });
    t.equal((ls.json() as { entries: unknown[] }).entries.length, 42);
    const fat = await a.call('viewer', 'GET', `${base}/volumes/1/files`);
    t.ok((fat.json() as { entries: Array<{ name: string }> }).entries.some((e) => e.name === 'A long file name.txt'));
    const missing = await a.call('viewer', 'GET', `${base}/volumes/2/files?path=/nope`);
    t.equal(missing.statusCode, 404);
    t.equal((missing.json() as { code: string }).code, 'SV_ERR_FS_NOT_FOUND');
    const xfs = await a.call('viewer', 'GET', `${base}/volumes/3/files`);
    t.equal(xfs.statusCode, 422);
    t.match(xfs.json(), { code: 'SV_ERR_VOLUME_UNSUPPORTED', message: /XFS/ });
    t.equal((await a.call('viewer', 'GET', `${base}/volumes/7/files`)).statusCode, 404, 'no volume 7');
    t.equal((await a.call(null, 'GET', `${base}/volumes`)).statusCode, 401);
  });

  await t.test('file download with Range (operator)', async (t) => {
    const big = readFileSync(join(disk.extTree, 'big.bin'));
    t.equal((await a.call('viewer', 'GET', `${base}/volumes/2/content?path=/big.bin`)).statusCode, 403, 'a viewer may not download data');
    const whole = await a.call('operator', 'GET', `${base}/volumes/2/content?path=/big.bin`);
    t.equal(whole.statusCode, 200);
    t.equal(whole.headers['content-length'], String(big.length));
    t.ok(whole.rawPayload.equals(big), 'the file, byte for byte');
    const part = await a.call('operator', 'GET', `${base}/volumes/2/content?path=/big.bin`, undefined, { range: 'bytes=1000000-1999999' });
    t.equal(part.statusCode, 206);
    t.equal(part.headers['content-range'], `bytes 1000000-1999999/${big.length}`);
    t.ok(part.rawPayload.equals(big.subarray(1_000_000, 2_000_000)), 'the range');
    const past = await a.call('operator', 'GET', `${base}/volumes/2/content?path=/big.bin`, undefined, { range: `bytes=${big.length}-` });
    t.equal(past.statusCode, 416);
    const folder = await a.call('operator', 'GET', `${base}/volumes/2/content?path=/docs`);
    t.equal((folder.json() as { code: string }).code, 'SV_ERR_FS_IS_A_DIRECTORY');
    const fat = await a.call('operator', 'GET', `${base}/volumes/1/content?path=/data.bin`);
    t.ok(fat.rawPayload.equals(disk.fatFiles.get('data.bin')!), 'a FAT file');
  });

  await t.test('folder as tar (operator)', async (t) => {
    const r = await a.call('operator', 'GET', `${base}/volumes/2/tar?path=/docs`);
    t.equal(r.statusCode, 200);
    t.equal(r.headers['content-type'], 'application/x-tar');
    const path = join(dir, 'docs.tar');
    writeFileSync(path, r.rawPayload);
    const names = run(tar, ['tf', path]).trim().split('\n');
    t.ok(names.includes('docs/deep/er/bottom.txt'));
    t.equal(names.length, 45, 'docs/, 40 notes, link, deep/, deep/er/, bottom.txt');
  });

  await t.test('restore items into a restore root, as a job', async (t) => {
    const target = join(data, 'restores', 'items');
    const r = await a.call('operator', 'POST', `${base}/volumes/2/restore`, { paths: ['/docs', '/hello.txt'], target });
    t.equal(r.statusCode, 202, r.body);
    const job = await a.appliance.queue.waitFor((r.json() as { id: string }).id);
    t.equal(job.state, 'succeeded', JSON.stringify(job.error));
    t.match(job.result, { files: [target], bytesWritten: Number });
    t.same(readdirSync(target).sort(), ['docs', 'hello.txt']);
    t.equal(readFileSync(join(target, 'hello.txt'), 'utf8'), 'hello, item-level restore\n');
    const again = await a.call('operator', 'POST', `${base}/volumes/2/restore`, { paths: ['/hello.txt'], target });
    const failed = await a.appliance.queue.waitFor((again.json() as { id: string }).id);
    t.equal(failed.error?.code, 'SV_ERR_FILES_EXISTS', 'an existing file is not overwritten without "overwrite"');
    const over = await a.call('operator', 'POST', `${base}/volumes/2/restore`, { paths: ['/hello.txt'], target, overwrite: true });
    t.equal((await a.appliance.queue.waitFor((over.json() as { id: string }).id)).state, 'succeeded');
    const outside = await a.call('operator', 'POST', `${base}/volumes/2/restore`, { paths: ['/hello.txt'], target: join(dir, 'elsewhere') });
    t.equal(outside.statusCode, 403);
    t.equal((outside.json() as { code: string }).code, 'SV_ERR_API_PATH_NOT_ALLOWED');
    const nope = await a.call('operator', 'POST', `${base}/volumes/2/restore`, { paths: ['/nope'], target });
    t.equal(nope.statusCode, 404, 'a missing item is refused before a job is queued');
    t.equal((await a.call('viewer', 'POST', `${base}/volumes/2/restore`, { paths: ['/docs'], target })).statusCode, 403);
  });

  await t.test('a download in progress holds the point', async (t) => {
    await a.app.listen({ port: 0, host: '127.0.0.1' });
    const address = a.app.server.address() as { port: number };
    // 20 MiB (a hole in ext4, still 20 MiB to send), read no further than the first bytes: the response waits.
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = get(`http://127.0.0.1:${address.port}${base}/volumes/2/content?path=/sparse.bin`, { headers: { authorization: `Bearer ${a.tokens.operator}` } }, (r) => {
        r.pause();
        resolve(r);
      });
      req.on('error', reject);
    });
    t.equal(res.statusCode, 200);
    const held = await prune({ store, source: 'vm', pointIds: [pointId] });
    t.same(held.removed, [], 'prune keeps the point being downloaded');
    t.match(held.held, [{ id: pointId, holders: [/api files download/] }], 'and says who holds it');
    res.destroy();
    const opened = await Store.open(store);
    for (let i = 0; i < 200 && (await listHolds(opened, 'vm')).size > 0; i++) await new Promise((r) => setTimeout(r, 50));
    t.same((await prune({ store, source: 'vm', pointIds: [pointId] })).removed, [pointId], 'once the download is gone, the point can be pruned');
  });
});
