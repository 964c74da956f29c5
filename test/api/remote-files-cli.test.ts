/**
 * The `files` commands with --url against a real appliance (a `shadowvault serve` process on loopback with a
 * temporary data folder): an ext4 image made by mke2fs -d, backed up through the appliance, browsed with --url;
 * the JSON of volumes, ls and find equals what the same commands print locally over the appliance's own store;
 * `get --url` writes the same bytes and times as the local `get` (a 9 MB file read in several Range requests),
 * `get --tar FILE --url` the same archive, `volume-restore --url` the same image; text output works; --store
 * with --url is a usage error.
 */
import { randomFillSync } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  mkdirSync(join(tree, 'deep', 'er'), { recursive: true });
  writeFileSync(join(tree, 'deep', 'er', 'big.bin'), randomFillSync(Buffer.alloc(9_000_000)));
  const disk = join(dir, 'disk.img');
  run(mke2fs, ['-q', '-t', 'ext4', '-L', 'remote', '-d', tree, disk, '16M']);

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

  // get, find, tar and volume-restore: --url against the local commands over the same store.
  const outR = join(dir, 'out-remote');
  const outL = join(dir, 'out-local');
  const gr = await cli(['files', 'get', 'fsvm', '/docs', '/deep', '/top.txt', '--out', outR, ...url, '--json'], env);
  t.equal(gr.code, 0, gr.stderr);
  const gl = await cli(['files', 'get', 'fsvm', '/docs', '/deep', '/top.txt', '--out', outL, ...store, '--json'], env);
  t.equal(gl.code, 0, gl.stderr);
  const strip = (o: Record<string, unknown>): Record<string, unknown> => ({ ...o, out: undefined, durationMs: undefined });
  t.same(strip(JSON.parse(gr.stdout) as Record<string, unknown>), strip(JSON.parse(gl.stdout) as Record<string, unknown>), 'files get --url --json equals the local get');
  t.match(JSON.parse(gr.stdout), { files: 4, directories: 3, bytes: 9_070_010 });
  for (const f of ['docs/a.txt', 'docs/b.bin', 'deep/er/big.bin', 'top.txt']) {
    t.ok(readFileSync(join(outR, f)).equals(readFileSync(join(tree, f))), `${f}: same bytes as written`);
    t.equal(statSync(join(outR, f)).mtimeMs, statSync(join(outL, f)).mtimeMs, `${f}: same modification time as the local get`);
  }
  t.equal(statSync(join(outR, 'deep', 'er')).mtimeMs, statSync(join(outL, 'deep', 'er')).mtimeMs, 'a folder keeps its time');
  const again = await cli(['files', 'get', 'fsvm', '/top.txt', '--out', outR, ...url], env);
  t.equal(again.code, 1);
  t.match(again.stderr, /SV_ERR_FILES_EXISTS/, 'an existing file is refused without --force');

  const tr = await cli(['files', 'get', 'fsvm', '/docs', '--tar', join(dir, 'r.tar'), ...url], env);
  t.equal(tr.code, 0, tr.stderr);
  const tl = await cli(['files', 'get', 'fsvm', '/docs', '--tar', join(dir, 'l.tar'), ...store], env);
  t.equal(tl.code, 0, tl.stderr);
  t.ok(readFileSync(join(dir, 'r.tar')).equals(readFileSync(join(dir, 'l.tar'))), 'get --tar --url writes the same archive');

  const fr = await cli(['files', 'find', 'fsvm', '*.bin', ...url, '--json'], env);
  t.equal(fr.code, 0, fr.stderr);
  const fl = await cli(['files', 'find', 'fsvm', '*.bin', ...store, '--json'], env);
  t.same(JSON.parse(fr.stdout), JSON.parse(fl.stdout), 'files find --url --json equals the local find');
  t.same((JSON.parse(fr.stdout) as { found: { path: string }[] }).found.map((f) => f.path).sort(), ['/deep/er/big.bin', '/docs/b.bin']);

  const vr2 = await cli(['files', 'volume-restore', 'fsvm', '--volume', '1', '--out', join(dir, 'vol-r.img'), ...url, '--json'], env);
  t.equal(vr2.code, 0, vr2.stderr);
  t.ok(readFileSync(join(dir, 'vol-r.img')).equals(readFileSync(disk)), 'volume-restore --url: the volume (the whole unpartitioned disk) byte for byte');
  t.match(JSON.parse(vr2.stdout), { source: 'fsvm', disk: 0, volume: 1, size: 16 * 1024 * 1024 });
  const nf = await cli(['files', 'get', 'fsvm', '/nope', '--out', outR, ...url], env);
  t.equal(nf.code, 1);
  t.match(nf.stderr, /^error SV_ERR_FS_NOT_FOUND/, 'get --url of a missing path: the appliance\'s coded error');
});
