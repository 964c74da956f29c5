/**
 * Issue 9, D9: a disk whose size changed failed every backup of its source for good
 * (SV_ERR_SYNC_SOURCE_CHANGED_SIZE). Now it gets a new initial copy, recorded in the point (per disk
 * `initial: true` and a `reason`); earlier points keep their copies and restore bit-identical at their own
 * sizes; later backups are incremental again. A disk added to the source is a new initial copy too, and a
 * removed one simply is not in the next point.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { backup, fileRefs, listPoints, restore } from '../../src/sync/index.js';
import { tempDir } from '../helpers/env.js';
import { makeRawImage, sha256 } from '../appliance/images.js';

const MiB = 1 << 20;
t.teardown(closePool);

t.test('grow and shrink a disk, add and remove one: new initial copies, every point restores', async (t) => {
  const dir = tempDir(t, 'sv-d9-resize-');
  const store = join(dir, 'store');
  const d0 = join(dir, 'd0.img');
  const d1 = join(dir, 'd1.img');
  const expect: { id: string; disks: string[] }[] = [];
  const take = async (images: string[]) => {
    const p = await backup({ store, source: 'vm', disks: fileRefs(images) });
    expect.push({ id: p.id, disks: images.map((f) => sha256(readFileSync(f))) });
    return p;
  };

  makeRawImage(d0, 4, 4, 1);
  const p1 = await take([d0]);
  t.equal(p1.kind, 'initial');

  makeRawImage(d0, 6, 6, 2); // grown
  const p2 = await take([d0]);
  t.equal(p2.disks[0]!.virtualSize, 6 * MiB);
  t.equal(p2.disks[0]!.initial, true, 'the grown disk got a new initial copy');
  t.equal(p2.disks[0]!.reason, `size changed from ${4 * MiB} to ${6 * MiB}`);
  t.equal(p2.parent, p1.id, 'the point continues the series');

  makeRawImage(d0, 6, 1, 3); // first MiB changes, size kept
  const p3 = await take([d0]);
  t.notOk(p3.disks[0]!.initial, 'an unchanged size is not a new copy');
  t.ok(p3.disks[0]!.stats!.bytesNew < 6 * MiB, `the next backup stores only changes (${p3.disks[0]!.stats!.bytesNew} bytes new)`);

  makeRawImage(d0, 2, 2, 4); // shrunk
  makeRawImage(d1, 3, 3, 5); // and a disk added
  const p4 = await take([d0, d1]);
  t.equal(p4.disks[0]!.reason, `size changed from ${6 * MiB} to ${2 * MiB}`);
  t.equal(p4.disks[1]!.initial, true);
  t.equal(p4.disks[1]!.reason, 'disk added to the source');

  const p5 = await take([d0]); // disk 1 removed
  t.equal(p5.disks.length, 1);
  t.notOk(p5.disks[0]!.initial);

  const listed = await listPoints({ store, source: 'vm' });
  t.same(listed.map((p) => (p.damaged ? [] : p.disks.map((d) => d.reason ?? null))), [[null], [`size changed from ${4 * MiB} to ${6 * MiB}`], [null], [`size changed from ${6 * MiB} to ${2 * MiB}`, 'disk added to the source'], [null]], 'points --json shows why a disk was copied anew');

  for (const e of expect) {
    for (let disk = 0; disk < e.disks.length; disk++) {
      const out = join(dir, `r-${e.id}-${disk}.img`);
      await restore({ store, source: 'vm', point: e.id, disk, out, format: 'raw' });
      t.equal(sha256(readFileSync(out)), e.disks[disk], `point ${e.id} disk ${disk} restores bit-identical at its own size`);
    }
  }
});
