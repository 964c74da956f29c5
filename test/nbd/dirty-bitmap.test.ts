/**
 * BLOCK_STATUS over `qemu:dirty-bitmap:NAME` reports exactly the blocks written while the bitmap was
 * enabled, served by qemu-nbd (`-B`) and by qemu-storage-daemon (`bitmaps.0=`, with `qemu:allocation-depth`
 * over a backing chain). The extents helpers (dirtyRanges, readRanges) read back exactly those bytes.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NbdClient } from '../../src/nbd/client.js';
import { dirtyRanges, readRanges, walkExtents, type Range } from '../../src/nbd/extents.js';
import { CONTEXT } from '../../src/nbd/protocol.js';
import { run, tempDir } from '../helpers/env.js';
import { qemuNbd, startPeer } from './peers.js';

const KiB = 1024;
const MiB = 1 << 20;
/** Writes made while bitmap b0 is enabled: offset, length, fill byte. */
const DIRTY: [number, number, number][] = [
  [4 * MiB, 64 * KiB, 0x22],
  [9 * MiB, 192 * KiB, 0x33],
  [15 * MiB + 960 * KiB, 64 * KiB, 0x44],
];

/** A 16 MiB qcow2 over a base: 1 MiB in the base, 1 MiB in the overlay before the bitmap, then DIRTY. */
function makeImages(dir: string): string {
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
  run('qemu-io', ['-c', 'write -P 0x0b 2M 1M', base]);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top]);
  run('qemu-io', ['-c', 'write -P 0x11 0 1M', top]);
  run('qemu-img', ['bitmap', '--add', top, 'b0']);
  run('qemu-io', ...[DIRTY.flatMap(([o, l, p]) => ['-c', `write -P ${p} ${o} ${l}`]).concat(top)]);
  return top;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function checkDirty(t: Test, client: NbdClient): Promise<void> {
  const want: Range[] = DIRTY.map(([offset, length]) => ({ offset, length }));
  t.same(await collect(dirtyRanges(client, 'b0')), want, 'dirty ranges are exactly the writes');
  // Small steps: the walk merges extents across many BLOCK_STATUS replies.
  t.same(await collect(dirtyRanges(client, 'b0', { step: 64 * KiB })), want, 'same with 64 KiB requests');
  const pieces = await collect(readRanges(client, dirtyRanges(client, 'b0'), { pieceBytes: 64 * KiB, parallel: 4 }));
  t.equal(pieces.reduce((n, p) => n + p.data.length, 0), DIRTY.reduce((n, [, l]) => n + l, 0));
  for (const p of pieces) {
    const fill = DIRTY.find(([o, l]) => p.offset >= o && p.offset < o + l)![2];
    t.ok(p.data.every((b) => b === fill), `piece at ${p.offset} holds 0x${fill.toString(16)}`);
  }
}

t.test('qemu-nbd -B: qemu:dirty-bitmap reports the written blocks', async (t) => {
  const dir = tempDir(t);
  const top = makeImages(dir);
  const sock = await qemuNbd(t, dir, top, 'qcow2', ['-B', 'b0']);
  const client = await NbdClient.connect({ target: { path: sock }, metaContexts: [CONTEXT.BASE_ALLOCATION, 'qemu:dirty-bitmap:b0'] });
  t.teardown(() => client.close());
  await checkDirty(t, client);
});

t.test('qemu-storage-daemon: dirty bitmap and allocation depth over a backing chain', async (t) => {
  const dir = tempDir(t);
  const top = makeImages(dir);
  const sock = join(dir, 'qsd.sock');
  await startPeer(t, 'qemu-storage-daemon', [
    '--blockdev', `driver=qcow2,node-name=disk,read-only=on,file.driver=file,file.filename=${top}`,
    '--nbd-server', `addr.type=unix,addr.path=${sock}`,
    '--export', 'type=nbd,id=e,node-name=disk,name=disk,bitmaps.0=b0,allocation-depth=on',
  ], sock);
  const client = await NbdClient.connect({ target: { path: sock }, exportName: 'disk', metaContexts: ['qemu:dirty-bitmap:b0', CONTEXT.QEMU_ALLOCATION_DEPTH] });
  t.teardown(() => client.close());
  await checkDirty(t, client);
  const depth = (await collect(walkExtents(client, CONTEXT.QEMU_ALLOCATION_DEPTH))).map((e) => [e.offset / KiB, e.length / KiB, e.flags]);
  t.same(depth, [
    [0, 1024, 1],
    [1024, 1024, 0],
    [2048, 1024, 2],
    [3072, 1024, 0],
    [4096, 64, 1],
    [4160, 5056, 0],
    [9216, 192, 1],
    [9408, 6912, 0],
    [16320, 64, 1],
  ], 'depth 1 = overlay, 2 = base, 0 = unallocated');
  t.ok((await client.read(2 * MiB, 4096)).every((b) => b === 0x0b), 'base data reads through the chain');
});
