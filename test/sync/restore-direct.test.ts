/**
 * Restore with the raw writer's O_DIRECT path: the workers decode compact chunks into page-aligned buffers
 * (so every 64 KiB block qualifies for O_DIRECT without a copy), a point restores bit-identical to the VM disk
 * (a folder under /var/tmp) and to /dev/shm (where the kernel takes or refuses O_DIRECT), checked by SHA-256
 * against the source and with `qemu-img compare`, sparse where zero; vhdx and vhd restores of the same point
 * (their own writers) still compare equal.
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { alignmentGap } from '../../src/native/index.js';
import { closePool } from '../../src/pool/index.js';
import { backup, openStore, restore, fileRefs } from '../../src/sync/index.js';
import { PointDiskReader } from '../../src/sync/restore.js';
import { requireTool, run } from '../helpers/env.js';
import { sha256 } from './helpers.js';

t.teardown(closePool);

const MiB = 1 << 20;
const SIZE = 32 * MiB;

function folder(t: { teardown(fn: () => void): void }, parent: string): string {
  const dir = mkdtempSync(join(parent, 'sv-test-restore-direct-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A day-3 style point (scattered changed blocks, some in zero regions) of a disk with (by default) a short tail block. */
async function makeStore(dir: string, tail = true): Promise<{ disk: string; store: string }> {
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  generateDisk(disk, SIZE, 7);
  if (tail) {
    const fd = openSync(disk, 'r+');
    writeSync(fd, Buffer.from('tail bytes, not a multiple of 4 KiB'), 0, 35, SIZE + 3000);
    closeSync(fd);
  }
  await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  await backup({ store, source: 'vm', disks: fileRefs([disk]), changed: [changeDay(disk, SIZE, 5, 3)] });
  return { disk, store };
}

t.test('restore to raw on the VM disk and on /dev/shm: identical to the source, sparse', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = folder(t, '/var/tmp');
  const { disk, store } = await makeStore(dir);
  const want = sha256(disk);
  const shm = folder(t, '/dev/shm');
  for (const out of [join(dir, 'out.raw'), join(shm, 'out.raw')]) {
    const r = await restore({ store, source: 'vm', out, format: 'raw' });
    t.equal(statSync(out).size, statSync(disk).size, `${out}: size`);
    t.equal(sha256(out), want, `${out}: SHA-256 of the source`);
    t.doesNotThrow(() => run(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', disk, out]), `${out}: qemu-img compare`);
    t.ok(statSync(out).blocks * 512 < statSync(disk).size, `${out}: zero blocks left as holes`);
    t.ok(r.bytesWritten < statSync(disk).size, `${out}: ${r.bytesWritten} bytes written`);
  }
});

t.test('restore to vhdx and vhd still compares equal with the source', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = folder(t, '/var/tmp');
  const { disk, store } = await makeStore(dir, false); // VHDX sizes are multiples of 512
  for (const format of ['vhdx', 'vhd'] as const) {
    const out = join(dir, `out.${format}`);
    await restore({ store, source: 'vm', out, format });
    const qfmt = format === 'vhd' ? 'vpc' : 'vhdx';
    // A size rounded up by the format must read as zeros past the source's end (qemu-img compare's default).
    t.doesNotThrow(() => run(qemuImg, ['compare', '-f', 'raw', '-F', qfmt, disk, out]), `${format}: qemu-img compare`);
  }
});

t.test('compact chunks come back page-aligned from the workers', async (t) => {
  const dir = folder(t, '/var/tmp');
  const { store } = await makeStore(dir);
  const s = await openStore(store);
  const m = await s.resolvePoint('vm', undefined);
  const reader = new PointDiskReader(s.ref, await s.loadIndex(), m, m.disks[0]!);
  await reader.open();
  let chunks = 0;
  try {
    for (let off = 0; off < SIZE; off += 8 * MiB) {
      const got = await reader.readBlocks(off, 8 * MiB);
      if (!got) continue;
      chunks++;
      t.equal(alignmentGap(got.data, 4096), 0, `chunk at ${off}: data starts on a page`);
    }
  } finally {
    reader.close();
  }
  t.ok(chunks > 0, `${chunks} chunks checked`);
});
