/**
 * ext test images made by the real tools: a source tree written to a temp folder (files of many sizes, a
 * sparse file, fast and slow symlinks, a hard link, deep and UTF-8 names; optionally a directory of 3000
 * entries), then
 * `mke2fs -d DIR` with the options under test, then `e2fsck -fyD` (which re-indexes large directories as
 * htrees, as the kernel would have built them). The expected tree for the contract suite comes from the same
 * source folder.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, symlinkSync, truncateSync, utimesSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run } from '../helpers/env.js';
import type { ExpectedNode } from './fs-contract.js';

export const BIG_DIR = '/many';
export const BIG_DIR_ENTRIES = 3000;
export const SPARSE = { path: '/holes/sparse.bin', size: 70 * 1024 * 1024 + 5, islands: [[0, 5000], [9 * 1024 * 1024, 4096], [70 * 1024 * 1024 - 100, 105]] as Array<[number, number]> };

export function bigDirName(i: number): string {
  return `entry-${i}-${'x'.repeat(i % 40)}${i % 7 === 0 ? '-é' : ''}`;
}

/** Write the source tree under `dir`; returns the expected tree (paths → contents). */
export function writeSourceTree(dir: string, seed: number, withBigDir: boolean): Record<string, ExpectedNode> {
  const tree: Record<string, ExpectedNode> = {};
  const file = (p: string, data: Buffer) => { writeFileSync(join(dir, p), data); tree[p] = { type: 'file', data }; };
  const mkd = (p: string) => { mkdirSync(join(dir, p)); tree[p] = { type: 'directory' }; };
  const rnd = (n: number) => { const b = randomBytes(n); b[0] = seed & 0xff; return b; };
  file('/empty', Buffer.alloc(0));
  file('/tiny.txt', Buffer.from('hello, ext\n'));
  file('/fifty-nine', Buffer.alloc(59, 0x41));
  file('/block-plus-one', rnd(4097));
  file('/random-300k.bin', rnd(300_000));
  file('/random-5m.bin', rnd(5 * 1024 * 1024 + 123));
  mkd('/deep'); mkd('/deep/er'); mkd('/deep/er/est');
  file('/deep/er/est/Mixed Case Ünïcödé name, longer than thirty-two bytes.txt', rnd(1000));
  mkd('/holes');
  const fd = openSync(join(dir, SPARSE.path), 'w');
  const sparse = Buffer.alloc(SPARSE.size);
  for (const [at, len] of SPARSE.islands) {
    const b = rnd(len);
    writeSync(fd, b, 0, len, at);
    b.copy(sparse, at);
  }
  closeSync(fd);
  truncateSync(join(dir, SPARSE.path), SPARSE.size);
  tree[SPARSE.path] = { type: 'file', data: sparse };
  symlinkSync('tiny.txt', join(dir, 'fast-link'));
  tree['/fast-link'] = { type: 'symlink', target: 'tiny.txt' };
  const long = `deep/er/est/${'long-target-'.repeat(8)}`;
  symlinkSync(long, join(dir, 'slow-link'));
  tree['/slow-link'] = { type: 'symlink', target: long };
  linkSync(join(dir, 'tiny.txt'), join(dir, 'hard-link'));
  tree['/hard-link'] = { type: 'file', data: tree['/tiny.txt']!.data!, sameAs: '/tiny.txt' };
  if (withBigDir) {
    mkd(BIG_DIR);
    for (let i = 0; i < BIG_DIR_ENTRIES; i++) file(`${BIG_DIR}/${bigDirName(i)}`, Buffer.from(`${i}\n`));
  }
  // Known times (mke2fs -d copies them): atime 2001-09-09T01:46:40.5Z, mtime 2033-05-18T03:33:20.25Z.
  utimesSync(join(dir, 'tiny.txt'), 1_000_000_000.5, 2_000_000_000.25);
  return tree;
}

/** Make an ext image of `sizeMiB` from `src` with `mke2fs` options, then re-index directories (e2fsck -fyD). */
export function makeExtImage(path: string, src: string, sizeMiB: number, mkfsArgs: string[], hashAlg?: string): void {
  requireTool('mke2fs');
  requireTool('e2fsck');
  run('truncate', ['-s', `${sizeMiB}M`, path]);
  run('mke2fs', ['-q', '-F', '-L', 'sv-test', ...mkfsArgs, '-d', src, path]);
  // The directory hash is chosen with tune2fs (mke2fs has no option for it); e2fsck -D then indexes with it.
  if (hashAlg) run('tune2fs', ['-E', `hash_alg=${hashAlg}`, path]);
  try {
    run('e2fsck', ['-fyD', path]);
  } catch (err) {
    // e2fsck exits 1 when it changed something (here: optimised directories); 4 and up are real errors.
    const status = (err as { status?: number }).status ?? 8;
    if (status >= 4) throw err;
  }
}

/** `debugfs -R 'stat PATH'` fields: inode, size, links, and the exact times (seconds, nanoseconds). */
export function debugfsStat(image: string, path: string): { inode: number; size: number; links: number; times: Record<string, { sec: number; nsec: number }> } {
  const out = run('debugfs', ['-R', `stat "${path}"`, image]);
  const inode = Number(/Inode: (\d+)/u.exec(out)?.[1]);
  const size = Number(/Size: (\d+)/u.exec(out)?.[1]);
  const links = Number(/Links: (\d+)/u.exec(out)?.[1]);
  const times: Record<string, { sec: number; nsec: number }> = {};
  for (const m of out.matchAll(/^\s*(ctime|atime|mtime|crtime): 0x([0-9a-f]+)(?::([0-9a-f]+))?/gmu)) {
    const extra = m[3] ? parseInt(m[3], 16) : undefined;
    const raw = parseInt(m[2]!, 16) | 0;
    times[m[1]!] = { sec: raw + (extra !== undefined ? (extra & 3) * 2 ** 32 : 0), nsec: extra !== undefined ? extra >>> 2 : 0 };
  }
  return { inode, size, links, times };
}
