/**
 * `shadowvault files volumes|ls|get|find|volume-restore` end to end: a GPT disk made by sgdisk with FAT16
 * (mkfs.fat + mcopy), ext4 (mke2fs -d, with hostile names patched in), an XFS-looking and an LVM volume, made a
 * VHDX (qemu-img), backed up with the engine, then browsed from the store. Checked against what the tools wrote:
 * contents byte for byte, sizes, mtimes, symlink targets, volume labels; escaped names never leave --out
 * (nothing appears next to it, nothing at /tmp/pwn1), and the tar stream lists and extracts with the system tar.
 * The commands run the CLI's main() in this process (test/helpers/cli.ts); an error exit and the tar stream on
 * stdout go through the real launcher in a child process.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { decodeName } from '../../src/files/names.js';
import { closePool } from '../../src/pool/index.js';
import { backup } from '../../src/sync/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { cliInProcess as svIn, cliJsonInProcess as svInJson } from '../helpers/cli.js';
import { sv } from '../sync/helpers.js';
import { HOSTILE, LONG_NAME, makeTestDisk, P1, P2 } from './images.js';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(closePool);

interface VolumesOut {
  scheme: string;
  volumes: Array<{ index: number; offset: number; size: number; typeName: string; kind: string; fs: { type: string; label: string } | null; error?: { code: string; message: string } }>;
}
interface LsOut { path: string; volume: number; entries: Array<{ name: string; type: string; size: number; modified: string | null; target?: string }> }

/** Every path under `dir`, relative, sorted. */
function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    out.push(r);
    if (lstatSync(join(dir, r)).isDirectory()) out.push(...tree(dir, r));
  }
  return out;
}

const dir = tempDir(t, 'sv-files-');
const disk = makeTestDisk(dir);

t.test('files commands over a GPT disk with FAT16, ext4, XFS and LVM volumes', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const tar = requireTool('tar');
  const vhdx = join(dir, 'disk.vhdx');
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vhdx', disk.raw, vhdx]);
  const store = join(dir, 'store');
  const point = await backup({ store, source: 'vm', disks: fileRefs([vhdx]) });
  const ref = `vm@${point.id}`;

  await t.test('volumes', async (t) => {
    const r = await svInJson<VolumesOut>(['files', 'volumes', ref, '--store', store]);
    t.equal(r.scheme, 'gpt');
    t.same(r.volumes.map((v) => [v.index, v.offset, v.size]), [[1, P1.offset, P1.size], [2, P2.offset, P2.size], [3, 49 << 20, 8 << 20], [4, 57 << 20, 6 << 20]]);
    t.match(r.volumes[0]!.fs, { type: 'fat16', label: 'SVFAT' });
    t.match(r.volumes[1]!.fs, { type: 'ext4', label: 'svext' });
    t.equal(r.volumes[2]!.fs, null);
    t.match(r.volumes[2]!.error, { code: 'SV_ERR_VOLUME_UNSUPPORTED', message: /XFS file system: not supported yet/ });
    t.match(r.volumes[3]!.error, { code: 'SV_ERR_VOLUME_UNSUPPORTED', message: /LVM2 physical volume/ });
    const human = await svIn(['files', 'volumes', 'vm', '--store', store]);
    t.equal(human.code, 0, human.stderr);
    t.match(human.stdout, /GPT, 4 volume\(s\)[\s\S]*ext4 "svext"/);
    const bad = sv(['files', 'ls', 'vm', '--store', store, '--volume', '3']);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /SV_ERR_VOLUME_UNSUPPORTED.*XFS/);
    t.match((await svIn(['files', 'ls', 'vm', '--store', store, '--volume', '9'])).stderr, /SV_ERR_VOLUME_NOT_FOUND/);
  });

  await t.test('ls: the largest readable volume by default, sizes, times and symlinks as written', async (t) => {
    const root = await svInJson<LsOut>(['files', 'ls', ref, '--store', store]);
    t.equal(root.volume, 2, 'the ext4 volume (largest readable) is the default');
    const hello = root.entries.find((e) => e.name === 'hello.txt')!;
    t.equal(hello.size, 26);
    t.equal(hello.modified, '2020-01-02T03:04:05.000Z', 'mtime as utimes set it');
    t.same(root.entries.map((e) => e.name).sort(), ['big.bin', 'docs', 'hello.txt', 'lost+found', 'odd', 'sparse.bin']);
    const docs = await svInJson<LsOut>(['files', 'ls', ref, '/docs', '--store', store, '-l']);
    t.equal(docs.entries.length, 42);
    t.match(docs.entries.find((e) => e.name === 'link-to-hello'), { type: 'symlink', target: '../hello.txt' });
    const fat = await svInJson<LsOut>(['files', 'ls', ref, '/', '--volume', '1', '--store', store]);
    t.same(fat.entries.filter((e) => e.type === 'file').map((e) => [e.name, e.size]).sort(), [...disk.fatFiles].map(([n, b]) => [n, b.length]).sort());
    const one = await svInJson<LsOut>(['files', 'ls', ref, '/docs/deep/er/bottom.txt', '--store', store]);
    t.same(one.entries.map((e) => e.name), ['bottom.txt'], 'a file path lists that file');
    t.match((await svIn(['files', 'ls', ref, '/nope', '--store', store])).stderr, /SV_ERR_FS_NOT_FOUND/);
  });

  await t.test('find', async (t) => {
    const r = await svIn(['files', 'find', ref, 'note-1?.txt', '--volume', '2', '--store', store]);
    t.equal(r.code, 0, r.stderr);
    t.same(r.stdout.trim().split('\n'), Array.from({ length: 10 }, (_, i) => `/docs/note-1${i}.txt`));
    const all = await svIn(['files', 'find', ref, '*.TXT', '--store', store]);
    t.match(all.stdout, /volume 1 {2}\/A long file name\.txt/, 'FAT matches case-insensitively; every readable volume is searched');
    t.notMatch(all.stdout, /volume 2 .*note/, 'ext matches exactly');
    t.match((await svIn(['files', 'find', ref, '/docs/**/bottom.*', '--store', store])).stdout, /^volume 2 {2}\/docs\/deep\/er\/bottom\.txt$/m, '** spans folders');
  });

  await t.test('get: the whole ext volume, byte for byte, with times; refuses to overwrite', async (t) => {
    const out = join(dir, 'restore-all');
    const r = await svIn(['files', 'get', ref, '/docs', '/big.bin', '/hello.txt', '--out', out, '--store', store, '--json']);
    t.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { files: number; directories: number; symlinks: number };
    t.same([res.files, res.directories, res.symlinks], [43, 3, 1]);
    t.ok(readFileSync(join(out, 'big.bin')).equals(readFileSync(join(disk.extTree, 'big.bin'))), 'big.bin byte for byte');
    for (const f of tree(join(disk.extTree, 'docs'))) {
      const a = join(disk.extTree, 'docs', f);
      const b = join(out, 'docs', f);
      const sa = lstatSync(a);
      if (sa.isSymbolicLink()) t.equal(readlinkSync(b), readlinkSync(a), `${f}: symlink target`);
      else if (sa.isFile()) t.ok(readFileSync(b).equals(readFileSync(a)), `${f}: contents`);
      if (!sa.isSymbolicLink()) t.equal(Math.floor(lstatSync(b).mtimeMs / 1000), Math.floor(sa.mtimeMs / 1000), `${f}: mtime`);
    }
    t.equal(statSync(join(out, 'hello.txt')).mtime.toISOString(), '2020-01-02T03:04:05.000Z');
    t.equal(statSync(join(out, 'docs', 'deep')).mtime.toISOString(), '2019-05-06T07:08:09.000Z', 'folder times are set after their contents');
    const again = await svIn(['files', 'get', ref, '/hello.txt', '--out', out, '--store', store]);
    t.equal(again.code, 1);
    t.match(again.stderr, /SV_ERR_FILES_EXISTS/);
    writeFileSync(join(out, 'hello.txt'), 'changed');
    t.equal((await svIn(['files', 'get', ref, '/hello.txt', '--out', out, '--store', store, '--force'])).code, 0);
    t.equal(readFileSync(join(out, 'hello.txt'), 'utf8'), 'hello, item-level restore\n', '--force overwrites');
    t.same(readdirSync(out).filter((n) => n.includes('.tmp-')), [], 'no temp files left');
  });

  await t.test('get: hostile names are escaped and never leave --out', async (t) => {
    rmSync('/tmp/pwn1', { force: true, recursive: true });
    const parent = join(dir, 'hostile');
    mkdirSync(parent);
    const out = join(parent, 'out');
    const r = await svIn(['files', 'get', ref, '/odd', '--out', out, '--store', store, '--json']);
    t.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { skipped: Array<{ path: string }>; renamedCount: number };
    t.same(readdirSync(parent), ['out'], 'nothing written next to --out');
    t.notOk(existsSync('/tmp/pwn1'), 'nothing written where "../../../../tmp/pwn1" points');
    const written = readdirSync(join(out, 'odd')).sort();
    const expected = HOSTILE.filter(([, as]) => as !== undefined).map(([, as]) => as!);
    for (const as of expected) t.ok(written.includes(as), `written as ${as}`);
    for (const [name, as] of HOSTILE) if (as) t.equal(decodeName(as), name, `${JSON.stringify(name)} decodes back`);
    t.same(res.skipped.map((s) => s.path).sort(), ['/odd/../../../../tmp/pwn1', '/odd/B\0B.BB'], 'the names holding "/" or NUL are reported, not written');
    const long = written.find((n) => n.startsWith('LLLL'))!;
    t.ok(long && Buffer.byteLength(long) <= 255 && long.includes('%~'), 'the overlong escaped name is shortened');
    const map = JSON.parse(readFileSync(join(out, '.shadowvault-names.json'), 'utf8')) as Record<string, string>;
    t.equal(map[`odd/${long}`], `/odd/${LONG_NAME}`, 'and mapped to its original in .shadowvault-names.json');
    t.ok(res.renamedCount >= expected.length);
    t.equal(readFileSync(join(out, 'odd', '%43ON'), 'utf8'), 'content of "CON"\n');
  });

  await t.test('get --tar -: a stream the system tar lists and extracts, inside its folder', async (t) => {
    const path = join(dir, 'items.tar');
    const r = await svIn(['files', 'get', ref, '/docs', '/odd', '/big.bin', '/hello.txt', '--tar', path, '--store', store]);
    t.equal(r.code, 0, r.stderr);
    const names = run(tar, ['tf', path]).trim().split('\n');
    t.ok(names.every((n) => !n.startsWith('/') && !n.split('/').includes('..')), 'no absolute path, no ".." component');
    t.ok(names.includes('docs/deep/er/bottom.txt') && names.includes('odd/%43ON') && names.includes('big.bin'));
    const x = join(dir, 'tar-x');
    mkdirSync(x);
    run(tar, ['xf', path, '-C', x]);
    t.ok(readFileSync(join(x, 'big.bin')).equals(readFileSync(join(disk.extTree, 'big.bin'))), 'contents survive tar');
    t.equal(readlinkSync(join(x, 'docs', 'link-to-hello')), '../hello.txt');
    t.equal(statSync(join(x, 'hello.txt')).mtime.toISOString(), '2020-01-02T03:04:05.000Z', 'mtime kept');
    t.ok(existsSync(join(x, 'odd', readdirSync(join(dir, 'hostile', 'out', 'odd')).find((n) => n.startsWith('LLLL'))!)), 'the long name (pax path) extracts');
    const stdout = sv(['files', 'get', ref, '/hello.txt', '--tar', '-', '--store', store]);
    t.equal(stdout.code, 0);
    t.match(stdout.stdout, /hello, item-level restore/);
  });

  await t.test('volume-restore: one partition as a raw image, equal to the partition made by the tools', async (t) => {
    const out = join(dir, 'p1.raw');
    const r = await svIn(['files', 'volume-restore', ref, '--volume', '1', '--out', out, '--store', store]);
    t.equal(r.code, 0, r.stderr);
    t.ok(readFileSync(out).equals(readFileSync(disk.raw).subarray(P1.offset, P1.offset + P1.size)), 'byte for byte');
    t.match((await svIn(['files', 'volume-restore', ref, '--volume', '1', '--out', out, '--store', store])).stderr, /SV_ERR_FORMAT_OUTPUT_EXISTS/);
    const mdir = requireTool('mdir');
    t.match(run(mdir, ['-i', out, '::']), /A long file name\.txt/, 'mtools reads the restored FAT volume');
  });
});

t.test('a VHD made by qemu-img browses the same', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const vhd = join(dir, 'disk.vhd');
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'force_size=on', disk.raw, vhd]);
  const store = join(dir, 'store-vhd');
  await backup({ store, source: 'vmvhd', disks: fileRefs([vhd]) });
  const r = await svInJson<LsOut>(['files', 'ls', 'vmvhd', '/', '--volume', '1', '--store', store]);
  t.ok(r.entries.some((e) => e.name === 'A long file name.txt'));
  const out = join(dir, 'out-vhd');
  t.equal((await svIn(['files', 'get', 'vmvhd', '/data.bin', '--volume', '1', '--out', out, '--store', store])).code, 0);
  t.ok(readFileSync(join(out, 'data.bin')).equals(disk.fatFiles.get('data.bin')!));
});
