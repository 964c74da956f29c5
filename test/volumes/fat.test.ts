/**
 * The FAT12/16/32 reader over images made by mkfs.fat + mcopy (dosfstools, mtools): the shared contract
 * suite (every byte of every file, long and 8.3 names, case-insensitive lookup), the listing compared with
 * what `mdir` prints (names, sizes, dates), label and serial; then damage made by editing the image: a
 * looping FAT chain (SV_ERR_FS_FAT_LOOP), a free cluster inside a chain (SV_ERR_FS_FAT_CORRUPT), an LFN with
 * a wrong checksum (ignored: the 8.3 name is listed), a deleted file (not listed).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { FatFs, openFat } from '../../src/volumes/fs/fat/index.js';
import { openFileSystem } from '../../src/volumes/fs/probe.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { checkFsContract, type ExpectedNode } from './fs-contract.js';
import { fileVolume } from './volume-readers.js';

for (const tool of ['mkfs.fat', 'mcopy', 'mdir', 'mdel', 'mattrib']) requireTool(tool);

/** mtools with FAT times in UTC and no geometry checks. */
function mtools(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, TZ: 'UTC', MTOOLS_SKIP_CHECK: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
}

const MTIME = 1_600_000_000; // 2020-09-13T12:26:40Z, an even second (FAT mtimes have 2 s steps)
const dir = tempDir(t, 'sv-fat-');
const src = join(dir, 'src');
const tree: Record<string, ExpectedNode> = {};
function put(p: string, data?: Buffer): void {
  const full = join(src, p);
  if (data) writeFileSync(full, data); else mkdirSync(full, { recursive: true });
  utimesSync(full, MTIME, MTIME);
  tree[p] = data ? { type: 'file', data } : { type: 'directory' };
}
mkdirSync(src);
put('/short.txt', Buffer.from('short name, lower case\n'));
put('/UPPER.TXT', Buffer.from('upper\n'));
put('/A long file name with spaces.txt', Buffer.from('long\n'));
put('/Ünïcödé ünd ñame.txt', Buffer.from('unicode\n'));
put('/empty.dat', Buffer.alloc(0));
put('/big.bin', randomBytes(1024 * 1024 + 777));
put('/Long Directory Name');
put('/Long Directory Name/inner');
put('/Long Directory Name/inner/A file with a very long name, more than 26 chars, really.txt', randomBytes(5000));
put('/many');
for (let i = 0; i < 300; i++) put(`/many/file number ${i}.txt`, Buffer.from(`${i}\n`));
for (const p of ['/Long Directory Name/inner', '/Long Directory Name', '/many']) utimesSync(join(src, p), MTIME, MTIME);

function makeImage(type: 12 | 16 | 32, kib: number, suffix = ''): string {
  const image = join(dir, `fat${type}${suffix}.img`);
  mtools('mkfs.fat', ['-C', '-F', String(type), '-n', 'SV-FAT', image, String(kib)]);
  const top = ['short.txt', 'UPPER.TXT', 'A long file name with spaces.txt', 'Ünïcödé ünd ñame.txt', 'empty.dat', 'big.bin', 'Long Directory Name', 'many'];
  mtools('mcopy', ['-s', '-m', '-i', image, ...top.map((n) => join(src, n)), '::/']);
  mtools('mattrib', ['-i', image, '+h', '+s', '::/short.txt']);
  return image;
}

/** `mdir -a` lines (hidden and system files too) → name (long name when there is one) → [size or -1 for a directory, 'YYYY-MM-DD HH:MM']. */
function mdirListing(image: string, path: string): Map<string, [number, string]> {
  const out = new Map<string, [number, string]>();
  for (const line of mtools('mdir', ['-a', '-i', image, `::${path}`]).split('\n')) {
    const m = /^(.{8}) (.{3}) +(\d+|<DIR>) +(\d{4}-\d\d-\d\d) +(\d+:\d\d) ?(.*)$/u.exec(line);
    if (!m) continue;
    const base = m[1]!.trimEnd();
    const ext = m[2]!.trimEnd();
    const name = m[6]!.trim() || (ext ? `${base}.${ext}` : base);
    if (name === '.' || name === '..') continue;
    out.set(name, [m[3] === '<DIR>' ? -1 : Number(m[3]), `${m[4]} ${m[5]!.padStart(5, '0')}`]);
  }
  return out;
}

for (const [type, kib] of [[12, 8192], [16, 32768], [32, 66000]] as const) {
  t.test(`FAT${type}`, async (t) => {
    const image = makeImage(type, kib);
    const fs = await openFileSystem(fileVolume(t, image), { name: image });
    t.ok(fs instanceof FatFs, 'probed as FAT');
    t.equal(fs.type, `fat${type}`);
    t.equal(fs.label, 'SV-FAT', 'label');
    t.match(mtools('mdir', ['-i', image, '::/']), `Volume Serial Number is ${fs.uuid}`, 'serial as mdir prints it');
    await checkFsContract(t, { fs, tree });
    for (const path of ['/', '/Long Directory Name/inner', '/many']) {
      const want = mdirListing(image, path);
      const got = new Map((await fs.list(path)).map((e) => [e.name, [e.type === 'directory' ? -1 : e.size, new Date(e.times.modified!).toISOString().slice(0, 16).replace('T', ' ')] as [number, string]]));
      t.same(got, want, `${path}: names, sizes and modification times as mdir lists them (${want.size} entries)`);
    }
    t.equal((await fs.stat('/big.bin')).times.modified, MTIME * 1000, 'mtime kept by mcopy -m, to the second');
    t.equal((await fs.stat('/short.txt')).attributes! & 0x06, 0x06, 'hidden and system attributes (mattrib +h +s) listed');
  });
}

function pokeFatEntry(fs: FatFs, image: string, cluster: number, value: number): void {
  const g = fs.geometry;
  const fd = openSync(image, 'r+');
  if (g.type === 'fat16') {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value);
    writeSync(fd, b, 0, 2, g.fatOffset + cluster * 2);
  } else throw new Error('test pokes FAT16 only');
  closeSync(fd);
}

t.test('damage made by editing a FAT16 image', async (t) => {
  const image = makeImage(16, 32768, '-damaged');
  mtools('mdel', ['-i', image, '::/UPPER.TXT']);
  let fs = await openFat(fileVolume(t, image));
  const names = (await fs.list('/')).map((e) => e.name);
  t.notOk(names.includes('UPPER.TXT'), 'a deleted file is not listed');
  t.ok(hasCode(await fs.stat('/UPPER.TXT').catch((e: unknown) => e), 'SV_ERR_FS_NOT_FOUND'), 'nor found');

  // An LFN part with a wrong checksum: the long name is an orphan, the 8.3 name stands.
  const g = fs.geometry;
  const root = Buffer.alloc(g.rootBytes);
  const fd = openSync(image, 'r+');
  readSync(fd, root, 0, g.rootBytes, g.rootOffset);
  const needle = Buffer.from('A long', 'utf16le').subarray(0, 10);
  let lfnAt = -1;
  for (let at = 0; at < root.length; at += 32) if (root[at + 11] === 0x0f && root.subarray(at + 1, at + 11).equals(needle)) lfnAt = at;
  t.ok(lfnAt >= 0, 'found the first LFN part of "A long file name with spaces.txt"');
  writeSync(fd, Buffer.from([root[lfnAt + 13]! ^ 0xff]), 0, 1, g.rootOffset + lfnAt + 13);
  closeSync(fd);
  fs = await openFat(fileVolume(t, image));
  const after = (await fs.list('/')).map((e) => e.name);
  t.notOk(after.includes('A long file name with spaces.txt'), 'the long name with a bad checksum is ignored');
  t.ok(after.some((n) => /^ALONGF~\d\.TXT$/u.test(n)), `the 8.3 name is listed instead (${after.join(', ')})`);

  // A free cluster inside a chain, then a chain that loops back.
  const first = (await fs.stat('/big.bin')).id;
  pokeFatEntry(fs, image, first + 1, 0);
  fs = await openFat(fileVolume(t, image));
  const corrupt = await fs.open('/big.bin').catch((e: unknown) => e);
  t.ok(hasCode(corrupt, 'SV_ERR_FS_FAT_CORRUPT'), `a free cluster in a chain: ${(corrupt as Error).message}`);
  pokeFatEntry(fs, image, first + 1, first + 2);
  pokeFatEntry(fs, image, first + 40, first + 3);
  fs = await openFat(fileVolume(t, image));
  const loop = await fs.open('/big.bin').catch((e: unknown) => e);
  t.ok(hasCode(loop, 'SV_ERR_FS_FAT_LOOP'), `a looping chain: ${(loop as Error).message}`);
  pokeFatEntry(fs, image, first, first);
  fs = await openFat(fileVolume(t, image));
  t.ok(hasCode(await fs.open('/big.bin').catch((e: unknown) => e), 'SV_ERR_FS_FAT_LOOP'), 'a cluster pointing to itself');
});
