/**
 * Issue 9, D7: source disk paths were not restricted: an admin could add a source whose disk is /etc/shadow
 * and an operator back it up and download it. Now a disk must lie under a source root (`serve --source-root`,
 * default `<data-dir>/sources`), checked when the source is added and again when a job opens the disk (a
 * folder swapped for a link in between is refused); block devices only when a root names the device itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { makeRawImage } from '../appliance/images.js';
import { requireTool, tempDir } from '../helpers/env.js';

t.teardown(() => closePool());

t.test('a disk outside the source roots is refused when the source is added', async (t) => {
  const dir = tempDir(t, 'sv-d7-');
  const a = await startTestAppliance(t, { dir, sourceRoots: [join(dir, 'sources')] });
  const add = await a.call('admin', 'POST', '/api/v1/sources', { name: 'evil', disks: [{ name: 'disk0', path: '/etc/shadow' }] });
  t.equal(add.statusCode, 403);
  t.equal(add.json().code, 'SV_ERR_API_PATH_NOT_ALLOWED');
  t.match(add.json().message, /\/etc\/shadow/);
  t.equal((await a.call('viewer', 'GET', '/api/v1/sources')).json().length, 0, 'nothing added');

  mkdirSync(join(dir, 'sources'));
  symlinkSync('/etc', join(dir, 'sources', 'etc'));
  const viaLink = await a.call('admin', 'POST', '/api/v1/sources', { name: 'evil', disks: [{ name: 'disk0', path: join(dir, 'sources', 'etc', 'shadow') }] });
  t.equal(viaLink.json().code, 'SV_ERR_API_PATH_NOT_ALLOWED', 'a link inside a root pointing outside');

  const ok = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: join(dir, 'sources', 'vm1.img') }] });
  t.equal(ok.statusCode, 201, 'a disk under the root (not yet existing) is accepted');
  const id = (ok.json() as { id: string }).id;
  const patch = await a.call('admin', 'PATCH', `/api/v1/sources/${id}`, { disks: [{ name: 'disk0', path: '/etc/shadow' }] });
  t.equal(patch.json().code, 'SV_ERR_API_PATH_NOT_ALLOWED', 'changing a disk to a path outside is refused too');
});

t.test('a source folder swapped for a link after the source was added is refused when the disk is opened', async (t) => {
  const dir = tempDir(t, 'sv-d7-');
  const data = join(dir, 'data');
  const a = await startTestAppliance(t, { dir: data, deps: { engine: new SyncEngine(join(data, 'store')) } });
  mkdirSync(join(data, 'sources', 'vm2'), { recursive: true });
  makeRawImage(join(data, 'sources', 'vm2', 'disk0.img'), 1, 1, 3);
  const add = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm2', disks: [{ name: 'disk0', path: join(data, 'sources', 'vm2', 'disk0.img') }] });
  t.equal(add.statusCode, 201);
  const sourceId = (add.json() as { id: string }).id;

  const secret = join(dir, 'secret');
  mkdirSync(secret);
  writeFileSync(join(secret, 'disk0.img'), 'root:$6$secret-hash:19000:0:99999:7:::\n'.repeat(100));
  renameSync(join(data, 'sources', 'vm2'), join(data, 'sources', 'vm2-old'));
  symlinkSync(secret, join(data, 'sources', 'vm2'));

  const r = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId });
  const done = await a.appliance.queue.waitFor((r.json() as Job).id);
  t.equal(done.state, 'failed', 'the backup refused to read through the link');
  t.equal(done.error?.code, 'SV_ERR_API_PATH_NOT_ALLOWED');
  t.match(done.error?.message, new RegExp(secret), 'the error names where the path led');
  t.same((await a.call('viewer', 'GET', `/api/v1/sources/${sourceId}/points`)).json(), [], 'no recovery point of the secret file');
});

t.test('block devices: only when a root names the device itself', async (t) => {
  requireTool('losetup');
  const dir = tempDir(t, 'sv-d7-');
  const backing = join(dir, 'backing.img');
  makeRawImage(backing, 1, 1, 4);
  const lo = spawnSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' });
  if (lo.status !== 0) throw new Error(`losetup: ${lo.stderr}`);
  const dev = lo.stdout.trim();
  t.teardown(() => void spawnSync('losetup', ['-d', dev]));
  const viaFolder = await startTestAppliance(t, { dir: join(dir, 'a'), sourceRoots: ['/dev'] });
  const refused = await viaFolder.call('admin', 'POST', '/api/v1/sources', { name: 'lo', disks: [{ name: 'disk0', path: dev }] });
  t.equal(refused.json().code, 'SV_ERR_API_PATH_NOT_ALLOWED', 'a device under a folder root');
  t.match(refused.json().message, /block device/);
  const named = await startTestAppliance(t, { dir: join(dir, 'b'), sourceRoots: [dev] });
  t.equal((await named.call('admin', 'POST', '/api/v1/sources', { name: 'lo', disks: [{ name: 'disk0', path: dev }] })).statusCode, 201, 'the device a root names');
});
