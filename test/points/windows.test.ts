/**
 * Read windows of point images (src/points/windows.ts), as read-only exports use them: over a real store, every
 * 256 KiB read returns the disk's bytes, a window is decoded by one worker task however many reads (sequential
 * or concurrent) it serves, an all-zero window costs no task, a read across a window boundary is still right,
 * a point image opened without windows (the default) returns a fresh buffer for each read, and a released
 * window's memory is decoded into again once evicted while a view not released keeps its bytes.
 */
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openPointImage } from '../../src/points/image.js';
import { WINDOW } from '../../src/points/windows.js';
import { closePool, poolStats } from '../../src/pool/index.js';
import { backup } from '../../src/sync/index.js';
import { fileRefs } from '../../src/sources/file.js';
import { tempDir } from '../helpers/env.js';

t.teardown(closePool);

const KiB = 1024;
const WINDOWS = 4;

t.test('read windows: right bytes, one task per window, zero windows free', async (t) => {
  const dir = tempDir(t, 'sv-windows-');
  const disk = randomFillSync(Buffer.alloc(WINDOWS * WINDOW));
  disk.fill(0, 2 * WINDOW, 3 * WINDOW); // window 2 is all zero
  const raw = join(dir, 'disk.raw');
  writeFileSync(raw, disk);
  const store = join(dir, 'store');
  await backup({ store, source: 'vm', disks: fileRefs([raw]) });

  const image = await openPointImage({ store, source: 'vm', readWindows: true, hold: false });
  t.teardown(() => image.close());
  const before = poolStats().completed;
  for (let at = 0; at < disk.length; at += 256 * KiB) {
    const got = await image.read(at, 256 * KiB);
    if (!got.equals(disk.subarray(at, at + 256 * KiB))) t.fail(`bytes at ${at}`);
  }
  t.equal(poolStats().completed - before, WINDOWS - 1, 'one task per non-zero window, none for the zero one');

  // Concurrent reads of one window that is not kept any more share one task.
  const fresh = await openPointImage({ store, source: 'vm', readWindows: true, hold: false });
  t.teardown(() => fresh.close());
  const mark = poolStats().completed;
  const reads = await Promise.all(Array.from({ length: 16 }, (_, i) => fresh.read(WINDOW + i * 256 * KiB, 256 * KiB)));
  t.ok(Buffer.concat(reads).equals(disk.subarray(WINDOW, 2 * WINDOW)), 'concurrent reads: the window\'s bytes');
  t.equal(poolStats().completed - mark, 1, 'sixteen concurrent reads, one task');

  // Across a window boundary: not a window read, still the right bytes.
  const across = await fresh.read(WINDOW - 100 * KiB, 300 * KiB);
  t.ok(across.equals(disk.subarray(WINDOW - 100 * KiB, WINDOW + 200 * KiB)), 'a read across two windows');
});

t.test('without windows each read is a buffer of its own', async (t) => {
  const dir = tempDir(t, 'sv-windows-own-');
  const disk = randomFillSync(Buffer.alloc(WINDOW));
  const raw = join(dir, 'disk.raw');
  writeFileSync(raw, disk);
  const store = join(dir, 'store');
  await backup({ store, source: 'vm', disks: fileRefs([raw]) });
  const image = await openPointImage({ store, source: 'vm', hold: false });
  t.teardown(() => image.close());
  const a = await image.read(0, 256 * KiB);
  a.fill(0);
  const b = await image.read(0, 256 * KiB);
  t.ok(b.equals(disk.subarray(0, 256 * KiB)), 'changing one read\'s buffer does not change the next read');
});

t.test('released windows are reused; a view not released keeps its bytes', async (t) => {
  const dir = tempDir(t, 'sv-windows-reuse-');
  const pattern = randomFillSync(Buffer.alloc(WINDOW));
  const count = 16; // twice the kept windows; the same bytes in each (stored once)
  const raw = join(dir, 'disk.raw');
  writeFileSync(raw, Buffer.concat(Array.from({ length: count }, () => pattern)));
  const store = join(dir, 'store');
  await backup({ store, source: 'vm', disks: fileRefs([raw]) });
  const image = await openPointImage({ store, source: 'vm', readWindows: true, hold: false });
  t.teardown(() => image.close());

  const kept = await image.read(0, 256 * KiB); // never released
  const released: Buffer[] = [];
  for (let w = 1; w < count; w++) {
    for (let at = 0; at < WINDOW; at += 256 * KiB) {
      const got = await image.read(w * WINDOW + at, 256 * KiB);
      if (!got.equals(pattern.subarray(at, at + 256 * KiB))) t.fail(`bytes of window ${w} at ${at}`);
      if (at === 0) released.push(got);
      image.release(got);
    }
  }
  t.ok(kept.equals(pattern.subarray(0, 256 * KiB)), 'the unreleased view still holds its window\'s bytes');
  // A reused window's ArrayBuffer went to a worker (transferred): views of it are detached.
  t.ok(released.some((b) => b.length === 0), 'released windows were handed to the workers again');
});
