/**
 * The NBD server against real clients: a seeded VHDX (data runs and unallocated blocks) is exported and
 *   - `qemu-img compare` finds the export identical to the raw disk it was made from;
 *   - `nbdinfo --map` reports exactly the VHDX's unallocated blocks as holes (`qemu-img map` of the image);
 *   - `nbdcopy` copies it byte for byte, over the unix socket and over TCP on loopback;
 *   - `nbdinfo --list` lists it, and the empty export name is the default export;
 *   - our own NbdClient reads it with 64 requests in flight and the digest matches.
 * Requests in flight through libnbd's `nbdsh` (64 at once) are in server-writable.test.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { NbdClient } from '../../src/nbd/client.js';
import { readRanges } from '../../src/nbd/extents.js';
import { ImageBackend } from '../../src/export/image-backend.js';
import { ExportTable } from '../../src/export/table.js';
import { openDisk } from '../../src/formats/open.js';
import { NbdServer } from '../../src/nbd/server.js';
import { requireTool, run, runAsync, tempDir } from '../helpers/env.js';
import { makeDisk, serveImage } from './serve-image.js';

const SIZE = 96 << 20;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('a VHDX export read by qemu-img, nbdinfo, nbdcopy and our client', async (t) => {
  const dir = tempDir(t);
  const { raw, vhdx } = makeDisk(dir, SIZE, 4242);
  const served = await serveImage(t, dir, vhdx);

  t.match(await runAsync(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'raw', raw, served.uri()]), /Images are identical/, 'qemu-img compare: identical');

  const map = JSON.parse(await runAsync(requireTool('nbdinfo'), ['--map', '--json', served.uri()])) as { offset: number; length: number; type: number }[];
  const holes = (list: [number, number, boolean][]): [number, number][] => {
    const out: [number, number][] = [];
    for (const [start, length, hole] of list) {
      if (!hole) continue;
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === start) last[1] += length;
      else out.push([start, length]);
    }
    return out;
  };
  // qemu's VHDX driver reports no allocation, so the expectation comes from the raw file (SEEK_HOLE via
  // `qemu-img map`): qemu-img convert leaves a 1 MiB VHDX block unallocated exactly when it is all hole.
  const qmap = JSON.parse(run('qemu-img', ['map', '--output=json', '-f', 'raw', raw])) as { start: number; length: number; data: boolean }[];
  const blocks: [number, number, boolean][] = [];
  for (let b = 0; b < SIZE; b += 1 << 20) {
    const inHole = qmap.some((e) => !e.data && e.start <= b && b + (1 << 20) <= e.start + e.length);
    blocks.push([b, 1 << 20, inHole]);
  }
  const expected = holes(blocks);
  t.ok(expected.length > 3, `the image has holes (${expected.length})`);
  t.same(holes(map.map((e) => [e.offset, e.length, (e.type & 1) !== 0])), expected, 'nbdinfo --map holes = the 1 MiB blocks that are holes in the raw file (qemu-img map)');
  t.ok(map.every((e) => e.type === 0 || e.type === 3), 'extents are data (0) or hole+zero (3)');

  const copy = join(dir, 'copy.raw');
  await runAsync(requireTool('nbdcopy'), ['--requests=16', served.uri(), copy]);
  t.equal(sha(readFileSync(copy)), sha(readFileSync(raw)), 'nbdcopy of the export equals the raw disk');

  const list = await runAsync('nbdinfo', ['--list', '--json', `nbd+unix://?socket=${served.sock}`]);
  t.match(list, /"export-name": "disk"/, 'nbdinfo --list shows the export');
  t.match(await runAsync('nbdinfo', ['--size', `nbd+unix:///?socket=${served.sock}`]), String(SIZE), 'the empty name is the default export');
  t.match(await runAsync('nbdinfo', [served.uri()]), /is_read_only: true/, 'read-only export');

  const client = await NbdClient.connect({ target: { path: served.sock }, exportName: 'disk', maxInFlight: 64, maxRequestBytes: 1 << 20 });
  t.teardown(() => client.close());
  const whole = Buffer.alloc(SIZE);
  for await (const { offset, data } of readRanges(client, [{ offset: 0, length: SIZE }], { parallel: 64, pieceBytes: 256 << 10 })) data.copy(whole, offset);
  t.equal(sha(whole), sha(readFileSync(raw)), 'our client with 64 reads in flight reads the same bytes');
});

t.test('TCP on loopback (port chosen by the system)', async (t) => {
  const dir = tempDir(t);
  const { raw, vhdx } = makeDisk(dir, 16 << 20, 7);
  const disk = await openDisk(vhdx);
  const table = new ExportTable();
  table.add({ name: 'tcp', description: 'tcp test', backend: new ImageBackend(disk) });
  const server = await NbdServer.listen({ listen: { port: 0 }, exports: table });
  t.teardown(async () => {
    await server.close();
    await disk.close();
  });
  t.ok('host' in server.address && server.address.host === '127.0.0.1', 'binds to loopback by default');
  const port = 'port' in server.address ? server.address.port : 0;
  const copy = join(dir, 'tcp.raw');
  await runAsync(requireTool('nbdcopy'), [`nbd://127.0.0.1:${port}/tcp`, copy]);
  t.equal(sha(readFileSync(copy)), sha(readFileSync(raw)), 'nbdcopy over TCP');
});
