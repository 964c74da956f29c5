/**
 * A recovery point opened as a DiskImage (src/points/image.ts) passes the shared DiskImage suite, as the raw and
 * VHDX readers of the same bytes do: a disk with data, holes and a size that is no multiple of the block size,
 * made into a VHDX by qemu-img, backed up with the engine twice (the second point changes some blocks), then read
 * straight from the store. Small reads go through the block cache (a second read of the same range decodes
 * nothing), a hole is never decoded, and a point image reads its own point, not the newest.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { BlobCache } from '../../src/points/cache.js';
import { openPointImage } from '../../src/points/image.js';
import { closePool } from '../../src/pool/index.js';
import { backup } from '../../src/sync/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { diskImageContract, seeded } from '../formats/disk-image-contract.js';
import { hasCode } from '../../src/errors/index.js';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(closePool);

const MiB = 1 << 20;
const SIZE = 40 * MiB + 3 * 512;

function makeDisk(seed: number, changed = false): Buffer {
  const buf = Buffer.alloc(SIZE);
  const rnd = seeded(seed);
  const fill = (at: number, n: number) => { for (let i = 0; i < n; i++) buf[at + i] = (rnd() * 256) | 0; };
  fill(0, 300_000);
  fill(5 * MiB + 4096, 70_000);
  fill(17 * MiB, 3 * MiB + 12345);
  buf.write('text that compresses well '.repeat(40_000), 30 * MiB, 'latin1');
  fill(SIZE - 1000, 1000);
  if (changed) fill(17 * MiB + 65536 * 3 + 100, 200_000);
  return buf;
}

t.test('a point image passes the DiskImage suite, as raw and VHDX do', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t, 'sv-pointimg-');
  const store = join(dir, 'store');
  const v1 = makeDisk(7);
  const v2 = makeDisk(7, true);
  const raw = join(dir, 'disk.raw');
  const vhdx = join(dir, 'disk.vhdx');
  writeFileSync(raw, v1);
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  const first = await backup({ store, source: 'vm1', disks: fileRefs([vhdx]) });
  writeFileSync(raw, v2);
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  await backup({ store, source: 'vm1', disks: fileRefs([vhdx]) });

  await t.test('raw reader', async (t) => {
    const img = await openDisk(raw);
    t.teardown(() => img.close());
    await diskImageContract(t, img, v2);
  });
  await t.test('VHDX reader', async (t) => {
    const img = await openDisk(vhdx);
    t.teardown(() => img.close());
    await diskImageContract(t, img, v2);
  });
  await t.test('point image, latest point', async (t) => {
    const img = await openPointImage({ store, source: 'vm1', cache: new BlobCache() });
    t.teardown(() => img.close());
    await diskImageContract(t, img, v2);
    t.equal(img.info.virtualSize, SIZE);
    t.match(img.info.extra, { source: 'vm1', sourceFormat: 'vhdx', disk: 0 });
  });
  await t.test('point image, first point (by id prefix)', async (t) => {
    const img = await openPointImage({ store, source: 'vm1', point: first.id.slice(0, 20), cache: new BlobCache() });
    t.teardown(() => img.close());
    await diskImageContract(t, img, v1, { seed: 99, reads: 60 });
    const extents = await img.extents();
    t.ok(extents.some((e) => e.kind === 'zero' && e.offset <= 10 * MiB && e.offset + e.length >= 16 * MiB), 'the hole at 10-16 MiB is a zero extent');
  });
  await t.test('small reads go through the cache; holes decode nothing', async (t) => {
    const cache = new BlobCache(4 * MiB);
    const img = await openPointImage({ store, source: 'vm1', cache });
    t.teardown(() => img.close());
    const before = cache.stats();
    const a = await img.read(17 * MiB + 1000, 100_000);
    const mid = cache.stats();
    const b = await img.read(17 * MiB + 1000, 100_000);
    const after = cache.stats();
    t.ok(a.equals(b) && a.equals(v2.subarray(17 * MiB + 1000, 17 * MiB + 101_000)));
    t.ok(mid.misses > before.misses, 'the first read decodes blocks');
    t.equal(after.misses, mid.misses, 'the second read decodes nothing');
    t.ok(after.bytes <= 4 * MiB, 'the cache stays within its budget');
    await img.read(12 * MiB, 200_000);
    t.equal(cache.stats().misses, after.misses, 'a read of a hole decodes nothing');
  });
  await t.test('errors', async (t) => {
    await t.rejects(openPointImage({ store, source: 'vm1', disk: 3 }), { code: 'SV_ERR_SYNC_DISK_NOT_FOUND' });
    await t.rejects(openPointImage({ store, source: 'vm1', point: '19990101' }), { code: 'SV_ERR_STORE_POINT_NOT_FOUND' });
    const img = await openPointImage({ store, source: 'vm1' });
    await img.close();
    try {
      await img.read(0, 10);
      t.fail('read after close');
    } catch (err) {
      t.ok(hasCode(err, 'SV_ERR_FORMAT_READ_RANGE'), 'a read after close is refused');
    }
  });
});
