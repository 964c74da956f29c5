/**
 * Per-disk statistics of a recovery point: each disk's share of the point's figures, in the manifest, in
 * `points --json` / listPoints, and in what backup returns. The shares add up to the point's totals; a disk that
 * did not change shows no changed bytes; a manifest with bad per-disk figures is refused.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, listPoints, fileRefs } from '../../src/sync/index.js';
import { encodeManifest, parseManifest, type PointManifest } from '../../storage/manifest.js';
import { tempDir } from '../helpers/env.js';

const MiB = 1 << 20;
t.teardown(closePool);

const SUMMED = ['bytesRead', 'bytesChanged', 'bytesNew', 'blocksChanged', 'blocksNew', 'blocksZero', 'pagesWritten'] as const;

t.test('per-disk stats add up to the point totals; an unchanged disk shows no change', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const d0 = join(dir, 'd0.raw');
  const d1 = join(dir, 'd1.raw');
  generateDisk(d0, 16 * MiB, 1);
  generateDisk(d1, 24 * MiB, 2);
  const first = await backup({ store, source: 'vm', disks: fileRefs([d0, d1]) });
  const days = changeDay(d1, 24 * MiB, 10, 3);
  const second = await backup({ store, source: 'vm', disks: fileRefs([d0, d1]), changed: [[], days] });
  for (const p of [first, second]) {
    t.ok(p.disks.every((d) => d.stats), `${p.kind}: every disk has stats`);
    for (const f of SUMMED) t.equal(p.disks.reduce((n, d) => n + d.stats![f], 0), p[f], `${p.kind}: ${f} of the disks adds up to the point's`);
    t.ok(p.disks.reduce((n, d) => n + d.stats!.bytesStored, 0) <= p.bytesStored, `${p.kind}: stored bytes of the disks within the point's (which adds the index segment)`);
  }
  t.ok(first.disks[0]!.stats!.bytesRead > 0 && first.disks[1]!.stats!.bytesRead > 0, 'the initial point read both disks');
  t.equal(second.disks[0]!.stats!.bytesChanged, 0, 'disk 0 did not change');
  t.equal(second.disks[0]!.stats!.bytesRead, 0, 'and was not read (empty change list)');
  t.ok(second.disks[1]!.stats!.bytesChanged > 0, `disk 1 changed ${second.disks[1]!.stats!.bytesChanged} bytes`);
  const listed = await listPoints({ store, source: 'vm' });
  t.same(listed.map((p) => (p.damaged ? [] : p.disks.map((d) => d.stats))), [first, second].map((p) => p.disks.map((d) => d.stats)), 'listPoints gives the same per-disk stats');
});

t.test('a manifest with bad per-disk stats is refused; one without them is read', async (t) => {
  const dir = tempDir(t);
  const base: PointManifest = {
    format: 'shadowvault-point', version: 1, id: '20261124T101010000Z-abcdef', source: 'vm', time: new Date().toISOString(), kind: 'initial',
    consistency: 'crash', changeRef: null, parent: null, blockSize: 65536, fanout: 1024,
    disks: [{ index: 0, name: 'd.raw', format: 'raw', virtualSize: 1 << 20, root: 'ab'.repeat(32), depth: 1 }],
    stats: { bytesTotal: 1, bytesRead: 1, bytesChanged: 1, bytesNew: 1, bytesStored: 1, blocksChanged: 1, blocksNew: 1, blocksZero: 0, pagesWritten: 1, durationMs: 1 },
  };
  t.same(parseManifest(encodeManifest(base), 'm.json'), base, 'no per-disk stats (an older point): read');
  const stats = { bytesRead: 1, bytesChanged: 1, bytesNew: 1, bytesStored: 1, blocksChanged: 1, blocksNew: 1, blocksZero: 0, pagesWritten: 1 };
  const good = { ...base, disks: [{ ...base.disks[0]!, stats }] };
  t.same(parseManifest(encodeManifest(good), 'm.json'), good, 'with per-disk stats: read');
  for (const bad of [{ ...stats, bytesRead: -1 }, { ...stats, blocksNew: 1.5 }, { ...stats, pagesWritten: 'x' }, null]) {
    const m = { ...base, disks: [{ ...base.disks[0]!, stats: bad }] } as unknown as PointManifest;
    const path = join(dir, 'bad.json');
    writeFileSync(path, encodeManifest(m));
    t.throws(() => parseManifest(encodeManifest(m), path), { code: 'SV_ERR_STORE_CORRUPT_MANIFEST' }, `stats ${JSON.stringify(bad)} refused`);
  }
});
