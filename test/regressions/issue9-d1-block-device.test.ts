/**
 * Issue 9, D1: a block device was backed up as a 0-byte disk (its size came from stat, which says 0 for a
 * device) and reported as success. Now its size comes from /sys/dev/block (or probing reads), and its content
 * is read in full (stat's st_blocks, 0 for a device, no longer marks it "all zero").
 *
 * A real loop device over a raw file of known (seeded random, partly zero) content: `disk info` gives its size,
 * backup then restore gives the same SHA-256. A character device, a socket and a /proc file are refused with
 * SV_ERR_FORMAT_NOT_A_DISK, never backed up as empty.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { probeSize } from '../../src/formats/device.js';
import { openDisk } from '../../src/formats/open.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { cli, errorCode } from '../sync/formats-helpers.js';
import { rng } from '../formats/vhd-fixture-helpers.js';

const MiB = 1 << 20;
const SIZE = 12 * MiB + 64 * 1024; // not a multiple of the 1 MiB raw block: the tail is read too

function content(): Buffer {
  const next = rng(9001);
  const buf = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i += 4) buf.writeUInt32LE(Math.floor(next() * 2 ** 32), i);
  buf.fill(0, 2 * MiB, 5 * MiB); // a zero run: stored as zero blocks, restored as zeros
  return buf;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('a loop device is read at its real size, backs up and restores byte for byte', async (t) => {
  const losetup = requireTool('losetup');
  const dir = tempDir(t);
  const file = join(dir, 'disk.raw');
  const bytes = content();
  writeFileSync(file, bytes);
  const dev = execFileSync(losetup, ['-f', '--show', file], { encoding: 'utf8' }).trim();
  t.teardown(() => { execFileSync(losetup, ['-d', dev]); });

  const info = cli(['disk', 'info', dev, '--json']);
  t.equal(info.code, 0, info.stderr);
  const parsed = JSON.parse(info.stdout) as { format: string; virtualSize: number; allocation: { data: number } };
  t.equal(parsed.format, 'raw');
  t.equal(parsed.virtualSize, SIZE, 'disk info: the device size, not 0');
  t.equal(parsed.allocation.data, SIZE, 'the whole device is data (st_blocks says nothing for a device)');

  const image = await openDisk(dev);
  t.equal(image.info.virtualSize, SIZE);
  t.equal(sha(await image.read(0, SIZE)), sha(bytes), 'openDisk reads the device content');
  await image.close();
  const fh = await open(dev, 'r');
  t.equal(await probeSize(fh), SIZE, 'probing by reads finds the same size as /sys/dev/block');
  await fh.close();

  const store = join(dir, 'store');
  const b = cli(['backup', dev, '--store', store, '--source', 'blk', '--json']);
  t.equal(b.code, 0, b.stderr);
  const point = JSON.parse(b.stdout) as { disks: Array<{ virtualSize: number; format: string }>; bytesTotal: number };
  t.equal(point.disks[0]!.virtualSize, SIZE, 'the point holds the device size');
  const out = join(dir, 'restored.raw');
  const r = cli(['restore', 'blk', '--store', store, '--out', out, '--format', 'raw']);
  t.equal(r.code, 0, r.stderr);
  t.equal(sha(readFileSync(out)), sha(bytes), 'restored bytes equal the device content (SHA-256)');
});

t.test('a character device, a socket and a /proc file are refused, not backed up as empty', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'disk.sock');
  const server = createServer();
  await new Promise<void>((res) => server.listen(sock, res));
  t.teardown(() => new Promise<void>((res) => server.close(() => res())));
  for (const [what, path] of [['character device', '/dev/zero'], ['socket', sock], ['/proc file', '/proc/self/status'], ['sysfs file', '/sys/kernel/uevent_seqnum']] as const) {
    await t.rejects(openDisk(path), { code: 'SV_ERR_FORMAT_NOT_A_DISK' }, `${what}: openDisk`);
    const b = cli(['backup', path, '--store', join(dir, 'store'), '--source', 'x', '--json']);
    t.equal(b.code, 1, `${what}: backup fails`);
    t.equal(errorCode(b.stderr), 'SV_ERR_FORMAT_NOT_A_DISK', `${what}: ${b.stderr.trim()}`);
  }
});
