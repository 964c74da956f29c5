/**
 * `files volumes` and `files ls` with --url against a real appliance (a `shadowvault serve` process on loopback
 * with a temporary data folder): an ext4 image made by mke2fs -d, backed up through the appliance, browsed
 * with --url; the JSON equals what the same commands print locally over the appliance's own store; text output
 * works; --store with --url is a usage error.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { cli, serve } from './serve-helper.js';

t.test('files volumes and files ls with --url equal the local commands', async (t) => {
  const mke2fs = requireTool('mke2fs');
  const dir = tempDir(t, 'sv-remote-files-');
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'docs'), { recursive: true });
  writeFileSync(join(tree, 'docs', 'a.txt'), 'alpha\n');
  writeFileSync(join(tree, 'docs', 'b.bin'), Buffer.alloc(70_000, 7));
  writeFileSync(join(tree, 'top.txt'), 'top\n');
  const disk = join(dir, 'disk.img');
  run(mke2fs, ['-q', '-t', 'ext4', '-L', 'remote', '-d', tree, disk, '8M']);

  const data = join(dir, 'data');
  const s = await serve(['--data-dir', data, '--source-root', dir], { SHADOWVAULT_WORKERS: '1' });
  t.teardown(() => s.proc.kill('SIGKILL'));
  const token = readFileSync(join(data, 'admin-token'), 'utf8').trim();
  const env = { SHADOWVAULT_TOKEN: token, HOME: dir, XDG_DATA_HOME: join(dir, 'nodata') };
  const url = ['--url', s.url];
  t.equal((await cli(['sources', 'add', '--name', 'fsvm', '--disk', `disk0=${disk}`, ...url], env)).code, 0);
  const b = await cli(['backup', '--source', 'fsvm', ...url, '--json'], env);
  t.equal(b.code, 0, b.stderr);
  const store = ['--store', join(data, 'store')];

  const vr = await cli(['files', 'volumes', 'fsvm', ...url, '--json'], env);
  t.equal(vr.code, 0, vr.stderr);
  const vl = await cli(['files', 'volumes', 'fsvm', ...store, '--json'], env);
  t.equal(vl.code, 0, vl.stderr);
  t.same(JSON.parse(vr.stdout), JSON.parse(vl.stdout), 'files volumes --url --json equals the local listing');
  t.match(JSON.parse(vr.stdout), { volumes: [{ fs: { type: 'ext', label: 'remote' } }] });

  const lr = await cli(['files', 'ls', 'fsvm@latest', '/docs', ...url, '--json', '-l'], env);
  t.equal(lr.code, 0, lr.stderr);
  const ll = await cli(['files', 'ls', 'fsvm@latest', '/docs', ...store, '--json', '-l'], env);
  t.equal(ll.code, 0, ll.stderr);
  t.same(JSON.parse(lr.stdout), JSON.parse(ll.stdout), 'files ls --url --json equals the local listing');
  const names = (JSON.parse(lr.stdout) as { entries: { name: string; size: number }[] }).entries.map((e) => `${e.name}:${e.size}`).sort();
  t.same(names, ['a.txt:6', 'b.bin:70000']);

  const text = await cli(['files', 'ls', 'fsvm', ...url], env);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /top\.txt/, 'text output lists the root');
  t.match(text.stdout, /docs/);

  const both = await cli(['files', 'ls', 'fsvm', ...url, ...store], env);
  t.equal(both.code, 2, 'usage error');
  t.match(both.stderr, /SV_ERR_CLI_BAD_USAGE: --store and --url exclude each other/);
  const missing = await cli(['files', 'ls', 'fsvm', '/nope', ...url], env);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^error SV_ERR_FS_NOT_FOUND/, 'a missing path: the appliance\'s coded error');
});
