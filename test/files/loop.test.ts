/**
 * A directory that contains one of its own ancestors (debugfs `ln` links /a into /a/b/c as "up": a cycle no
 * kernel would make) stops `files get`, `--tar` and `find` with SV_ERR_FILES_DIRECTORY_LOOP instead of walking
 * forever; listing the folder still works. The disk has no partition table (one volume: the whole disk).
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { backup } from '../../src/sync/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { sv } from '../sync/helpers.js';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(closePool);

t.test('a directory cycle is detected', async (t) => {
  const mke2fs = requireTool('mkfs.ext4');
  const debugfs = requireTool('debugfs');
  const dir = tempDir(t, 'sv-files-loop-');
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'a', 'b', 'c'), { recursive: true });
  writeFileSync(join(tree, 'a', 'b', 'c', 'f.txt'), 'in the loop\n');
  const img = join(dir, 'disk.raw');
  run('truncate', ['-s', String(8 << 20), img]);
  run(mke2fs, ['-q', '-F', '-t', 'ext4', '-d', tree, img]);
  run(debugfs, ['-w', '-R', 'ln /a /a/b/c/up', img]);
  const store = join(dir, 'store');
  await backup({ store, source: 'loop', disks: fileRefs([img]) });

  const ls = sv(['files', 'ls', 'loop', '/a/b/c', '--store', store]);
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, /up\n/, 'the folder lists');
  const out = join(dir, 'out');
  const get = sv(['files', 'get', 'loop', '/a', '--out', out, '--store', store]);
  t.equal(get.code, 1);
  t.match(get.stderr, /SV_ERR_FILES_DIRECTORY_LOOP: \/a\/b\/c\/up: directory \(id \d+\) is one of its own ancestors/);
  t.same(readdirSync(out), ['a'], 'what was written stays inside --out');
  const tar = sv(['files', 'get', 'loop', '/', '--tar', join(dir, 'x.tar'), '--store', store]);
  t.match(tar.stderr, /SV_ERR_FILES_DIRECTORY_LOOP/);
  const find = sv(['files', 'find', 'loop', '*.txt', '--store', store]);
  t.match(find.stderr, /SV_ERR_FILES_DIRECTORY_LOOP/);
});
