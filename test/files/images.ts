/**
 * Test disks for item-level restore, made by the real tools: a 64 MiB GPT disk (sgdisk) holding
 *   p1  FAT16 "SVFAT" (mkfs.fat, files copied with mcopy, long names)
 *   p2  ext4 "svext" (mke2fs -d from a tree: a 3 MB file, a symlink, 40 small files, names a Windows share or a
 *       careless writer would choke on, and, patched into the directory block afterwards, names no tool makes:
 *       one with '/' ("../../../../tmp/pwn1"), one with NUL)
 *   p3  a volume starting with the XFS magic "XFSB"
 *   p4  a partition of type Linux LVM
 * `hostile` maps each ext name (as it ends up on disk) to how `files get` must write it.
 */
import { mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run } from '../helpers/env.js';
import { seeded } from '../formats/disk-image-contract.js';

const MiB = 1 << 20;
export const DISK_SIZE = 64 * MiB;
export const P1 = { offset: 1 * MiB, size: 16 * MiB };
export const P2 = { offset: 17 * MiB, size: 32 * MiB };
export const P3 = { offset: 49 * MiB, size: 8 * MiB };
export const P4 = { offset: 57 * MiB, size: 6 * MiB };

/** A name no mke2fs -d accepts, patched in over a placeholder of the same length. */
export const PATCHED: ReadonlyArray<readonly [string, string]> = [
  ['AAAAAAAAAAAAAAAAAAAA', '../../../../tmp/pwn1'],
  ['BBBBBB', 'B\0B.BB'],
];

export const LONG_NAME = `${'L'.repeat(200)}${'\x01'.repeat(27)}`;

/** ext names (as stored) → the escaped name `get` writes (undefined: not written). */
export const HOSTILE: ReadonlyArray<readonly [string, string | undefined]> = [
  ['CON', '%43ON'],
  ['aux.txt', '%61ux.txt'],
  ['back\\slash', 'back%5Cslash'],
  ['per%cent', 'per%25cent'],
  ['ctl\x01char', 'ctl%01char'],
  ['new\nline', 'new%0Aline'],
  ['B\0B.BB', undefined], // the readers refuse paths holding NUL (SV_ERR_FS_BAD_PATH): listed, skipped
  ['../../../../tmp/pwn1', undefined],
];

export interface TestDisk {
  readonly raw: string;
  /** The tree ext4 was made from (hostile names excluded, they are under `hostileDir`). */
  readonly extTree: string;
  readonly fatFiles: ReadonlyMap<string, Buffer>;
}

function fill(seed: number, n: number): Buffer {
  const rnd = seeded(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (rnd() * 256) | 0;
  return b;
}

export function makeTestDisk(dir: string): TestDisk {
  const sgdisk = requireTool('sgdisk');
  const mke2fs = requireTool('mkfs.ext4');
  const mkfat = requireTool('mkfs.fat');
  const mcopy = requireTool('mcopy');
  const raw = join(dir, 'disk.raw');
  writeFileSync(raw, Buffer.alloc(0));
  run('truncate', ['-s', String(DISK_SIZE), raw]);
  run(sgdisk, ['-n', `1:${P1.offset / 512}:${(P1.offset + P1.size) / 512 - 1}`, '-t', '1:0700', '-c', '1:fat part',
    '-n', `2:${P2.offset / 512}:${(P2.offset + P2.size) / 512 - 1}`, '-t', '2:8300', '-c', '2:ext part',
    '-n', `3:${P3.offset / 512}:${(P3.offset + P3.size) / 512 - 1}`, '-t', '3:8300',
    '-n', `4:${P4.offset / 512}:${(P4.offset + P4.size) / 512 - 1}`, '-t', '4:8e00', raw]);

  // ext4 from a tree.
  const tree = join(dir, 'ext-tree');
  mkdirSync(join(tree, 'docs', 'deep', 'er'), { recursive: true });
  writeFileSync(join(tree, 'big.bin'), fill(1, 3_000_000));
  run('truncate', ['-s', String(20 * MiB), join(tree, 'sparse.bin')]); // a hole: no blocks, 20 MiB to stream
  writeFileSync(join(tree, 'hello.txt'), 'hello, item-level restore\n');
  utimesSync(join(tree, 'hello.txt'), new Date('2021-03-04T05:06:07Z'), new Date('2020-01-02T03:04:05Z'));
  for (let i = 0; i < 40; i++) writeFileSync(join(tree, 'docs', `note-${String(i).padStart(2, '0')}.txt`), `note ${i}\n`.repeat(i + 1));
  writeFileSync(join(tree, 'docs', 'deep', 'er', 'bottom.txt'), 'the bottom\n');
  utimesSync(join(tree, 'docs', 'deep'), new Date('2019-05-06T07:08:09Z'), new Date('2019-05-06T07:08:09Z'));
  symlinkSync('../hello.txt', join(tree, 'docs', 'link-to-hello'));
  mkdirSync(join(tree, 'odd'));
  for (const [name] of HOSTILE) {
    const stored = PATCHED.find(([, to]) => to === name)?.[0] ?? name;
    writeFileSync(join(tree, 'odd', stored), `content of ${JSON.stringify(name)}\n`.replace(/AAAA|BBBB/g, 'xxxx'));
  }
  writeFileSync(join(tree, 'odd', LONG_NAME), 'long\n');
  const extImg = join(dir, 'ext.img');
  writeFileSync(extImg, Buffer.alloc(0));
  run('truncate', ['-s', String(P2.size), extImg]);
  run(mke2fs, ['-q', '-F', '-t', 'ext4', '-O', '^metadata_csum,^dir_index', '-L', 'svext', '-d', tree, extImg]);
  const ext = readFileSync(extImg);
  for (const [from, to] of PATCHED) {
    let at = ext.indexOf(from, 0, 'latin1');
    if (at < 0) throw new Error(`placeholder ${from} not found in the ext4 image`);
    for (; at >= 0; at = ext.indexOf(from, at + 1, 'latin1')) ext.write(to, at, 'latin1');
  }

  // FAT16 with long names.
  const fatImg = join(dir, 'fat.img');
  writeFileSync(fatImg, Buffer.alloc(0));
  run('truncate', ['-s', String(P1.size), fatImg]);
  run(mkfat, ['-F', '16', '-n', 'SVFAT', fatImg]);
  const fatFiles = new Map<string, Buffer>([
    ['A long file name.txt', Buffer.from('long names on FAT\n')],
    ['data.bin', fill(2, 200_000)],
  ]);
  for (const [name, data] of fatFiles) {
    const p = join(dir, 'fat-src-file');
    writeFileSync(p, data);
    run(mcopy, ['-i', fatImg, p, `::${name}`]);
  }

  const disk = readFileSync(raw);
  readFileSync(fatImg).copy(disk, P1.offset);
  ext.copy(disk, P2.offset);
  disk.write('XFSB', P3.offset, 'latin1');
  disk.write('LABELONE', P4.offset + 512, 'latin1');
  disk.write('LVM2 001', P4.offset + 512 + 24, 'latin1');
  writeFileSync(raw, disk);
  return { raw, extTree: tree, fatFiles };
}
