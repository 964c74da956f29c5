/** Configuration parsing, restore-target checks and durable state files, with a bounded fuzz of parseListen. */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { DEFAULT_PORT, defaultDataDir, makeConfig, parseListen } from '../../src/appliance/config.js';
import { JsonDocument } from '../../src/appliance/durable.js';
import { checkRestoreTarget } from '../../src/appliance/paths.js';
import { StateDb } from '../../src/appliance/state.js';
import { SvError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/env.js';

t.test('defaults: loopback, port 8470, XDG data folder', async (t) => {
  const c = makeConfig({}, { HOME: '/home/op' });
  t.equal(c.host, '127.0.0.1');
  t.equal(c.port, DEFAULT_PORT);
  t.equal(c.dataDir, '/home/op/.local/share/shadowvault');
  t.equal(c.storeDir, '/home/op/.local/share/shadowvault/store');
  t.equal(c.adminTokenFile, '/home/op/.local/share/shadowvault/admin-token');
  t.same(c.restoreRoots, ['/home/op/.local/share/shadowvault/restores']);
  t.same(c.sourceRoots, ['/home/op/.local/share/shadowvault/sources'], 'source disks only under the data folder until told otherwise');
  t.same(makeConfig({ sourceRoots: ['/var/lib/libvirt/images', 'rel'] }, { HOME: '/h' }).sourceRoots, ['/var/lib/libvirt/images', resolve('rel')]);
  t.same(c.maintenance, { gcTimes: ['02:30'], verifyTimes: ['03:30'] });
  t.equal(defaultDataDir({ XDG_DATA_HOME: '/x/data', HOME: '/h' }), '/x/data/shadowvault');
  t.equal(defaultDataDir({ XDG_DATA_HOME: 'relative', HOME: '/h' }), '/h/.local/share/shadowvault', 'a relative XDG_DATA_HOME is ignored (spec)');
  t.equal(makeConfig({ store: '/srv/store' }, { HOME: '/h' }).storeDir, '/srv/store');
  t.same(makeConfig({ gcAt: ['never'], verifyAt: ['01:00,13:00'] }, { HOME: '/h' }).maintenance, { gcTimes: [], verifyTimes: ['01:00', '13:00'] });
  t.throws(() => makeConfig({ gcAt: ['25:00'] }, {}), { code: 'SV_ERR_CLI_BAD_USAGE' });
  t.throws(() => makeConfig({ tlsCert: '/c.pem' }, {}), { code: 'SV_ERR_CLI_BAD_USAGE' });
});

t.test('parseListen', async (t) => {
  t.same(parseListen('127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 });
  t.same(parseListen(':9000'), { host: '127.0.0.1', port: 9000 });
  t.same(parseListen('9000'), { host: '127.0.0.1', port: 9000 });
  t.same(parseListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  t.same(parseListen('[::1]:8470'), { host: '::1', port: 8470 });
  t.same(parseListen('backup.example:8470'), { host: 'backup.example', port: 8470 });
  for (const bad of ['', 'host:', 'host:65536', 'host:port', '::1:80', 'a:b:c', '[::1]', '1.2.3.4:-1']) {
    t.throws(() => parseListen(bad), { code: 'SV_ERR_CLI_BAD_USAGE' }, JSON.stringify(bad));
  }
  // bounded fuzz: never anything but a result or a catalogued usage error
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const alphabet = '0123456789:[].abcxyz -\u0000\u00e9';
  for (let i = 0; i < 2000; i++) {
    const s = Array.from({ length: rnd(16) }, () => alphabet[rnd(alphabet.length)]).join('');
    try {
      const r = parseListen(s);
      if (!(Number.isInteger(r.port) && r.port >= 0 && r.port <= 65535 && r.host.length > 0)) t.fail(`bad result for ${JSON.stringify(s)}`);
    } catch (err) {
      if (!(err instanceof SvError) || err.code !== 'SV_ERR_CLI_BAD_USAGE') t.fail(`${JSON.stringify(s)}: ${String(err)}`);
    }
  }
});

t.test('restore targets', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'restores');
  mkdirSync(join(root, 'vm1'), { recursive: true });
  symlinkSync(join(dir), join(root, 'up'));
  t.equal(checkRestoreTarget(join(root, 'vm1', 'd.vhdx'), [root]), join(root, 'vm1', 'd.vhdx'));
  t.equal(checkRestoreTarget(join(root, 'new', 'deep', 'd.img'), [root]), join(root, 'new', 'deep', 'd.img'), 'missing folders are fine inside the root');
  for (const bad of [join(root, 'up', 'x'), `${root}/vm1/../../x`, root, `${root}/`, 'x', `${root}\u0000/x`, `${dir}/restores2/x`]) {
    t.throws(() => checkRestoreTarget(bad, [root]), { code: 'SV_ERR_API_PATH_NOT_ALLOWED' }, bad);
  }
  t.equal(checkRestoreTarget('/other/x', [root, '/other']), '/other/x', 'any of several roots');
});

t.test('durable JSON documents: atomic saves in order, group commit, no temp files left, corrupt file is a coded error', async (t) => {
  const dir = tempDir(t);
  const doc = new JsonDocument<number[]>(dir, 'list', () => []);
  await Promise.all([1, 2, 3, 4, 5].map((n) => doc.save([...doc.value, n])));
  t.same(JSON.parse(readFileSync(join(dir, 'list.json'), 'utf8')), [1, 2, 3, 4, 5]);
  t.same(readdirSync(dir), ['list.json'], 'no temp files');
  const again = new JsonDocument<number[]>(dir, 'list', () => []);
  t.same(again.value, [1, 2, 3, 4, 5]);
  // group commit: saves asked while a write runs share the next write; each resolves with its value on disk
  const doc2 = new JsonDocument<number[]>(dir, 'group', () => []);
  const seen: number[][] = [];
  await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(async (n) => {
    await doc2.save([...doc2.value, n]);
    const onDisk = JSON.parse(readFileSync(join(dir, 'group.json'), 'utf8')) as number[];
    t.ok(onDisk.includes(n), `save ${n} resolved once its value was on disk`);
    if (!seen.some((x) => x.join() === onDisk.join())) seen.push(onDisk);
  }));
  t.same(JSON.parse(readFileSync(join(dir, 'group.json'), 'utf8')), [1, 2, 3, 4, 5, 6, 7, 8]);
  t.ok(seen.length <= 2, `eight saves asked together took ${seen.length} writes (at most 2)`);
  writeFileSync(join(dir, 'bad.json'), '{"truncated": ');
  t.throws(() => new JsonDocument(dir, 'bad', () => ({})), { code: 'SV_ERR_APPLIANCE_STATE_CORRUPT' });
  const state = tempDir(t);
  writeFileSync(join(state, 'groups.json'), '[{');
  t.throws(() => StateDb.open(state), { code: 'SV_ERR_APPLIANCE_STATE_CORRUPT', message: /groups\.json/ });
});
