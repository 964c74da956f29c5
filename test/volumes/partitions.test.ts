/**
 * The partition-table reader against real tables written by sfdisk and sgdisk, compared with `sfdisk --json`;
 * a GPT inside a VHDX (qemu-img); damaged primary / both GPT headers; a disk without a table.
 */
import { closeSync, openSync, readSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { openDisk } from '../../src/formats/open.js';
import { crc32 } from '../../src/volumes/partitions/crc32.js';
import { readPartitions, type Volume } from '../../src/volumes/partitions/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { blank, DISK_BYTES, makeGpt, makeMbr, sfdiskParts } from './partition-images.js';

async function read(path: string) {
  const disk = await openDisk(path);
  try {
    return await readPartitions(disk);
  } finally {
    await disk.close();
  }
}

function comparable(v: Volume, gpt: boolean) {
  const { index, offset, size, type, name, guid, bootable } = v;
  return gpt ? { index, offset, size, type, name, guid } : { index, offset, size, type, bootable };
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x5a;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

t.test('MBR with 3 primaries and 3 logicals matches sfdisk', async (t) => {
  const path = makeMbr(tempDir(t));
  const table = await read(path);
  const ref = sfdiskParts(path);
  t.equal(table.scheme, 'mbr');
  t.same(table.warnings, []);
  t.same(table.volumes.map((v) => comparable(v, false)), ref.parts);
  t.same(table.volumes.map((v) => v.index), [1, 2, 3, 5, 6, 7]);
  t.same(table.volumes.map((v) => v.kind), ['plain', 'plain', 'lvm', 'plain', 'ldm', 'plain']);
  t.equal(table.volumes[2]!.typeName, 'Linux LVM');
  t.equal(table.volumes[4]!.typeName, 'Windows dynamic disk (LDM)');
});

t.test('GPT by sgdisk matches sfdisk (names, GUIDs, types)', async (t) => {
  const path = makeGpt(tempDir(t));
  const table = await read(path);
  const ref = sfdiskParts(path);
  t.equal(table.scheme, 'gpt');
  t.same(table.warnings, []);
  t.same(table.volumes.map((v) => comparable(v, true)), ref.parts);
  t.same(table.volumes.map((v) => [v.index, v.typeName, v.kind]), [
    [1, 'EFI System', 'plain'], [2, 'Microsoft basic data', 'plain'], [3, 'Linux LVM', 'lvm'],
    [4, 'Windows dynamic disk (LDM metadata)', 'ldm'], [6, 'Linux filesystem', 'plain'],
  ]);
  t.equal(table.volumes[4]!.name, 'Linux données');
});

t.test('sgdisk -g conversion of the MBR disk reads as the same partitions in a GPT', async (t) => {
  const path = makeMbr(tempDir(t));
  run(requireTool('sgdisk'), ['-g', path]);
  const table = await read(path);
  t.equal(table.scheme, 'gpt');
  t.same(table.volumes.map((v) => comparable(v, true)), sfdiskParts(path).parts);
  t.equal(table.volumes.length, 6);
});

t.test('GPT inside a VHDX, read through openDisk', async (t) => {
  const dir = tempDir(t);
  const raw = makeGpt(dir);
  const vhdx = join(dir, 'gpt.vhdx');
  run(requireTool('qemu-img'), ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  const [a, b] = [await read(raw), await read(vhdx)];
  t.equal(b.scheme, 'gpt');
  t.same(b.volumes, a.volumes);
});

t.test('damaged primary GPT header: the backup is used, with a warning; sgdisk -v agrees', async (t) => {
  const path = makeGpt(tempDir(t));
  const good = await read(path);
  flipByte(path, 512 + 0x30);
  const table = await read(path);
  t.same(table.volumes, good.volumes);
  t.equal(table.warnings.length, 1);
  t.match(table.warnings[0], /primary GPT damaged, the backup GPT is used: .*primary GPT header headerCrc at offset 528/u);
  const verify = run(requireTool('sgdisk'), ['-v', path]);
  t.match(verify, /corrupt GPT/u);
  t.match(verify, /No problems found/u);
});

t.test('damaged backup GPT header: the primary is used, with a warning', async (t) => {
  const path = makeGpt(tempDir(t));
  flipByte(path, DISK_BYTES - 512 + 0x30);
  const table = await read(path);
  t.equal(table.volumes.length, 5);
  t.match(table.warnings, [/backup GPT damaged/u]);
});

t.test('both GPT headers damaged: SV_ERR_VOLUME_BAD_GPT naming both', async (t) => {
  const path = makeGpt(tempDir(t));
  flipByte(path, 512 + 0x30);
  flipByte(path, DISK_BYTES - 512 + 0x30);
  const err = await read(path).then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_VOLUME_BAD_GPT'), String(err));
  t.match((err as Error).message, /primary GPT header headerCrc at offset 528.*backup GPT header headerCrc/u);
});

t.test('a disk of zeros has no table: one volume spanning the disk', async (t) => {
  const path = join(tempDir(t), 'zero.raw');
  blank(path, 8 << 20);
  t.same(await read(path), {
    scheme: 'none', sectorSize: 512, warnings: [],
    volumes: [{ index: 1, offset: 0, size: 8 << 20, type: '', typeName: 'whole disk', kind: 'plain' }],
  });
});

t.test('CRC-32 (IEEE) check value', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  t.equal(crc32(Buffer.from('12345abc9'), 5, 3), crc32(Buffer.from('12345\x00\x00\x009')), 'a field counted as zero');
});

t.test('a grown disk: the backup GPT at alternate_lba (not the last LBA) is found without a warning', async (t) => {
  const path = makeGpt(tempDir(t));
  const before = await read(path);
  truncateSync(path, DISK_BYTES + (4 << 20));
  const table = await read(path);
  t.same(table.warnings, []);
  t.same(table.volumes, before.volumes);
});
