/**
 * Seeded fuzz of the ext and FAT readers over real images (mke2fs -d, mkfs.fat + mcopy): bytes of the
 * superblock / group descriptors / inode table / extent-tree index node / directory blocks (ext), and of the
 * BPB / FAT / root directory / a subdirectory (FAT) are mutated in memory; the volume is then probed, walked
 * (every directory listed, every file read in pieces, symlinks resolved) and the outcome must be success or a
 * catalogued SV_ERR_FS_* / SV_ERR_VOLUME_* error: no crash, no hang, and no read outside the volume (the
 * buffer volume throws a plain Error for those, which fails the test).
 */
import { readFileSync, writeFileSync, mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { isSvError } from '../../src/errors/index.js';
import { ExtFs } from '../../src/volumes/fs/ext/index.js';
import { FatFs } from '../../src/volumes/fs/fat/index.js';
import { openFileSystem } from '../../src/volumes/fs/probe.js';
import type { FileSystem } from '../../src/volumes/fs/types.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { rng } from '../formats/vhd-fixture-helpers.js';
import { bufferVolume } from './volume-readers.js';

const ROUNDS = 150;
const PIECE = 64 * 1024;
const MAX_FILE_BYTES = 256 * 1024;

async function walk(fs: FileSystem): Promise<number> {
  let seen = 0;
  const dirs = ['/'];
  while (dirs.length > 0 && seen < 5000) {
    const d = dirs.shift()!;
    for (const e of await fs.list(d)) {
      seen++;
      const p = d === '/' ? `/${e.name}` : `${d}/${e.name}`;
      if (e.type === 'directory') { if (p.split('/').length < 10) dirs.push(p); continue; }
      if (e.type !== 'file') { await fs.stat(p); continue; }
      const h = await fs.open(p);
      for (let at = 0; at < Math.min(h.size, MAX_FILE_BYTES); at += PIECE) await h.read(at, PIECE);
    }
  }
  return seen;
}

async function fuzz(t: Test, name: string, image: Buffer, regions: Array<[number, number]>, seed: number): Promise<void> {
  const random = rng(seed);
  const outcomes = new Map<string, number>();
  // Mutate in place and put the regions back after each round (copying a 34 MiB image per round is slow).
  const buf = image;
  const saved = regions.map(([at, len]) => Buffer.from(buf.subarray(at, at + len)));
  for (let round = 0; round < ROUNDS; round++) {
    regions.forEach(([at], i) => saved[i]!.copy(buf, at));
    const flips = 1 + Math.floor(random() * 4);
    for (let i = 0; i < flips; i++) {
      const [at, len] = regions[Math.floor(random() * regions.length)]!;
      buf[at + Math.floor(random() * len)] = Math.floor(random() * 256);
    }
    let outcome: string;
    try {
      await walk(await openFileSystem(bufferVolume(buf), { name: `${name} round ${round}` }));
      outcome = 'ok';
    } catch (err) {
      if (!(isSvError(err) && (err.code.startsWith('SV_ERR_FS_') || err.code.startsWith('SV_ERR_VOLUME_')))) {
        t.fail(`${name} round ${round}: not a coded error: ${(err as Error).stack}`);
        return;
      }
      outcome = err.code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  t.pass(`${name}: ${ROUNDS} mutated images → ${JSON.stringify(Object.fromEntries(outcomes))}`);
  t.ok(outcomes.size > 1, 'mutations reached the checks (more than one outcome)');
}

t.test('ext4 (1 KiB blocks): superblock, descriptors, inodes, extent index node, directory blocks', async (t) => {
  requireTool('mke2fs');
  requireTool('debugfs');
  const dir = tempDir(t, 'sv-extfuzz-');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
  for (let i = 0; i < 60; i++) writeFileSync(join(src, 'sub', `file-${i}`), `${i}`.repeat(i * 7));
  writeFileSync(join(src, 'sub', 'deeper', 'x'), 'x');
  // A file of 12 islands: more extents than i_block holds, so the tree has an index level.
  const fd = openSync(join(src, 'islands'), 'w');
  for (let i = 0; i < 12; i++) writeSync(fd, Buffer.alloc(1024, i + 1), 0, 1024, i * 8192);
  closeSync(fd);
  const image = join(dir, 'fuzz.img');
  run('truncate', ['-s', '4M', image]);
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-O', '^has_journal', '-d', src, image]);
  const bytes = readFileSync(image);
  const fs = (await openFileSystem(bufferVolume(bytes))) as ExtFs;
  t.ok(fs instanceof ExtFs);
  const root = await fs.inodeOf('/');
  const bs = fs.blockSize;
  const ex = run('debugfs', ['-R', 'ex /islands', image]);
  const node = /^\s*0\/\s*1\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)/mu.exec(ex);
  t.ok(node, 'islands has an extent index node');
  const dirBlocks = ['/', '/sub'].map((p) => Number(run('debugfs', ['-R', `blocks ${p}`, image]).trim().split(/\s+/u)[0]));
  const regions: Array<[number, number]> = [
    [1024, 1024],
    [2 * bs, bs],
    [root.offset - fs.geometry.inodeSize, 80 * fs.geometry.inodeSize],
    [Number(node![1]) * bs, bs],
    ...dirBlocks.map((b): [number, number] => [b * bs, bs]),
  ];
  await fuzz(t, 'ext4', bytes, regions, 0x5eed);
});

t.test('FAT16 and FAT32: BPB, FAT, root directory, a subdirectory', async (t) => {
  requireTool('mkfs.fat');
  requireTool('mcopy');
  const dir = tempDir(t, 'sv-fatfuzz-');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'A Sub Directory'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(src, 'A Sub Directory', `long file name ${i}.txt`), 'y'.repeat(i * 300));
  writeFileSync(join(src, 'top.bin'), Buffer.alloc(20000, 7));
  for (const type of [16, 32] as const) {
    const image = join(dir, `fuzz${type}.img`);
    execFileSync('mkfs.fat', ['-C', '-F', String(type), image, type === 16 ? '20000' : '34000'], { stdio: 'ignore' });
    execFileSync('mcopy', ['-s', '-i', image, join(src, 'A Sub Directory'), join(src, 'top.bin'), '::/'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    const bytes = readFileSync(image);
    const fs = (await openFileSystem(bufferVolume(bytes))) as FatFs;
    t.ok(fs instanceof FatFs);
    const g = fs.geometry;
    const sub = (await fs.stat('/A Sub Directory')).id;
    const rootAt = g.type === 'fat32' ? g.dataOffset + (g.rootCluster - 2) * g.clusterSize : g.rootOffset;
    const regions: Array<[number, number]> = [
      [0, 90],
      [g.fatOffset, Math.min(g.fatBytes, 4096)],
      [rootAt, Math.min(g.clusterSize, 1024)],
      [g.dataOffset + (sub - 2) * g.clusterSize, g.clusterSize],
    ];
    await fuzz(t, `FAT${type}`, bytes, regions, 0xfa7 + type);
  }
});
