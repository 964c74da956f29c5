/**
 * ext4 and FAT32 volumes as partitions of a real disk, read through the disk-image layer: sfdisk makes an MBR
 * (a FAT32 LBA partition and a Linux partition), mkfs.fat --offset + mcopy and mke2fs -E offset -d fill them,
 * qemu-img converts the raw disk to VHDX and VHD; each image is opened with openDisk, its partitions read with
 * readPartitions, each volume probed and every file compared byte for byte with what was written.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { openFileSystem } from '../../src/volumes/fs/probe.js';
import { readPartitions } from '../../src/volumes/partitions/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { blank } from './partition-images.js';
import { diskVolume } from './volume-readers.js';

for (const tool of ['sfdisk', 'mkfs.fat', 'mcopy', 'mke2fs', 'qemu-img']) requireTool(tool);

const dir = tempDir(t, 'sv-extfat-disk-');
const src = join(dir, 'src');
mkdirSync(join(src, 'Some Folder'), { recursive: true });
const files: Record<string, Buffer> = {
  '/Some Folder/A document with a long name.bin': randomBytes(3 * 1024 * 1024 + 11),
  '/readme.txt': Buffer.from('inside a partition\n'),
};
for (const [p, b] of Object.entries(files)) writeFileSync(join(src, p), b);

const raw = join(dir, 'disk.raw');
blank(raw, 160 << 20);
run('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048,size=131072,type=c\nstart=133120,type=83\n' });
const fatAt = 2048 * 512;
const extAt = 133120 * 512;
execFileSync('mkfs.fat', ['-F', '32', '--offset', '2048', '-n', 'PART1', raw, String(131072 / 2)], { stdio: 'ignore' });
execFileSync('mcopy', ['-s', '-i', `${raw}@@${fatAt}`, join(src, 'Some Folder'), join(src, 'readme.txt'), '::/'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'part2', '-E', `offset=${extAt}`, '-d', src, raw, `${(160 << 10) - extAt / 1024}k`]);

for (const [format, name] of [['raw', 'disk.raw'], ['vhdx', 'disk.vhdx'], ['vpc', 'disk.vhd']] as const) {
  t.test(`${format}: both partitions browsed`, async (t) => {
    const path = join(dir, name);
    if (format !== 'raw') run('qemu-img', ['convert', '-f', 'raw', '-O', format, raw, path]);
    const disk = await openDisk(path);
    t.teardown(() => disk.close());
    const table = await readPartitions(disk);
    t.same(table.volumes.map((v) => v.offset), [fatAt, extAt], 'two partitions');
    const seen: string[] = [];
    for (const v of table.volumes) {
      const fs = await openFileSystem(diskVolume(disk, v.offset, v.size), { name: `${path} volume ${v.index}` });
      seen.push(`${fs.type}:${fs.label}`);
      for (const [p, want] of Object.entries(files)) {
        const h = await fs.open(p);
        t.ok((await h.read(0, h.size)).equals(want), `${fs.type} ${p}: bytes as written`);
      }
    }
    t.same(seen, ['fat32:PART1', 'ext4:part2'], 'FAT32 and ext4 with their labels');
  });
}
