/**
 * The payload block states the writers here never produce, set by editing the BAT of our own images, read per
 * MS-VHDX 2.5.1.1: UNDEFINED and UNMAPPED read as zeros (the specification allows any content; zeros is one of
 * its listed behaviours) even when FileOffsetMB still points at old data, and in a differencing disk they do
 * not fall through to the parent, unlike NOT_PRESENT; ZERO reads as zeros in both.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { writeDisk } from '../../src/formats/write.js';
import { writeBatEntry } from '../../src/formats/vhdx/build.js';
import {
  PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_UNDEFINED, PAYLOAD_BLOCK_UNMAPPED, PAYLOAD_BLOCK_ZERO,
} from '../../src/formats/vhdx/layout.js';
import { tempDir } from '../helpers/env.js';

const MiB = 1 << 20;
const BAT = 3 * MiB; // our writer's layout

async function setState(path: string, entry: number, state: number, fileOffset: number): Promise<void> {
  const b = Buffer.alloc(8);
  writeBatEntry(b, 0, state, fileOffset);
  const fh = await open(path, 'r+');
  await fh.write(b, 0, 8, BAT + entry * 8);
  await fh.close();
}

t.test('UNDEFINED, UNMAPPED, ZERO and NOT_PRESENT in dynamic and differencing disks', async (t) => {
  const dir = tempDir(t);
  const parent = join(dir, 'parent.vhdx');
  const src = (fillers: number[]) => ({
    virtualSize: 4 * MiB,
    blockSize: MiB,
    async *blocks() { for (const [i, f] of fillers.entries()) yield { index: i, data: Buffer.alloc(MiB, f) }; },
  });
  await writeDisk('vhdx', src([1, 2, 3, 4]), parent, { blockSize: MiB });
  const child = join(dir, 'child.avhdx');
  await writeDisk('vhdx', src([5, 6, 7, 8]), child, { variant: 'differencing', parentPath: parent, blockSize: MiB });

  // Dynamic parent: blocks at 4, 5, 6, 7 MiB.
  await setState(parent, 0, PAYLOAD_BLOCK_UNDEFINED, 4 * MiB);
  await setState(parent, 1, PAYLOAD_BLOCK_UNMAPPED, 5 * MiB);
  await setState(parent, 2, PAYLOAD_BLOCK_ZERO, 0);
  const p = await openDisk(parent);
  const pData = await p.read(0, 4 * MiB);
  t.ok(pData.subarray(0, 3 * MiB).every((b) => b === 0), 'UNDEFINED, UNMAPPED and ZERO read as zeros');
  t.ok(pData.subarray(3 * MiB).every((b) => b === 4), 'FULLY_PRESENT block 3');
  t.same((await p.extents()).map((e) => e.kind), ['unallocated', 'zero', 'data']);
  const parentId = p.info.id;
  await p.close();

  // Differencing child (chunk ratio 4096: entries 0-3 are payload). Its DataWriteGuid link is untouched.
  await setState(child, 0, PAYLOAD_BLOCK_NOT_PRESENT, 0);
  await setState(child, 1, PAYLOAD_BLOCK_UNDEFINED, 0);
  await setState(child, 2, PAYLOAD_BLOCK_UNMAPPED, 0);
  const c = await openDisk(child);
  t.teardown(() => c.close());
  t.equal(c.info.parent?.id, parentId);
  const cData = await c.read(0, 4 * MiB);
  t.ok(cData.subarray(0, MiB).every((b) => b === 0), 'NOT_PRESENT: the parent (whose block 0 is UNDEFINED: zeros)');
  t.ok(cData.subarray(MiB, 3 * MiB).every((b) => b === 0), 'UNDEFINED and UNMAPPED: zeros, not the parent');
  t.ok(cData.subarray(3 * MiB).every((b) => b === 8), 'FULLY_PRESENT: the child');
  await setState(parent, 0, 6, 4 * MiB); // parent block 0 present again
  const c2 = await openDisk(child);
  t.teardown(() => c2.close());
  t.ok((await c2.read(0, MiB)).every((b) => b === 1), 'NOT_PRESENT falls through to the parent\'s data');
  t.same((await c2.extents()).map((e) => [e.offset / MiB, e.length / MiB, e.kind]), [[0, 1, 'data'], [1, 1, 'unallocated'], [2, 1, 'zero'], [3, 1, 'data']]);
});
