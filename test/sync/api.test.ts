/**
 * The programmatic API the appliance calls (src/sync/index.ts): multi-disk points, progress, AbortSignal,
 * a VHD source, consistency check repairing a store that lost blocks, JSON-able results.
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, check, gc, listPoints, listSources, prune, restore, verify, fileRefs } from '../../src/sync/index.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from './helpers.js';

const MiB = 1 << 20;
t.teardown(closePool);

t.test('two disks, progress, restore each disk, VHD round trip as a source', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const d0 = join(dir, 'd0.raw');
  const d1 = join(dir, 'd1.raw');
  generateDisk(d0, 12 * MiB, 1);
  generateDisk(d1, 8 * MiB, 2);
  const seen: number[] = [];
  const p1 = await backup({ store, source: 'vm', disks: fileRefs([d0, d1]), progress: (p) => seen.push(p.bytesDone / p.bytesTotal), consistency: 'application', changeRef: 'rct-1' });
  t.same(JSON.parse(JSON.stringify(p1)), p1, 'the result is plain JSON');
  t.match(p1, { kind: 'initial', consistency: 'application', changeRef: 'rct-1', disks: [{ index: 0, virtualSize: 12 * MiB }, { index: 1, virtualSize: 8 * MiB }] });
  t.equal(seen[seen.length - 1], 1, 'progress reaches bytesTotal');
  t.ok(seen.every((v, i) => i === 0 || v >= seen[i - 1]!), 'progress is monotonic');
  const changes = changeDay(d1, 8 * MiB, 5, 3);
  const p2 = await backup({ store, source: 'vm', disks: fileRefs([d0, d1]), changed: [[], changes] });
  t.equal(p2.kind, 'incremental');
  t.equal(p2.bytesRead, changes.length * 65536, 'disk 0 (empty change list) is not read at all');
  for (const disk of [0, 1]) {
    const out = join(dir, `r${disk}.raw`);
    const r = await restore({ store, source: 'vm', disk, out });
    t.equal(r.format, 'raw');
    t.equal(sha256(out), sha256(disk ? d1 : d0));
  }
  // VHD as a source: restore disk 1 as VHD, back the VHD up as another source, restore that to raw
  const vhd = join(dir, 'd1.vhd');
  await restore({ store, source: 'vm', disk: 1, out: vhd, format: 'vhd' });
  const pv = await backup({ store, source: 'vhdvm', disks: fileRefs([vhd]) });
  t.equal(pv.disks[0]!.format, 'vhd');
  t.equal(pv.bytesNew, 0, 'dedup across sources: every block of the VHD is already stored');
  const back = join(dir, 'vhd-back.raw');
  await restore({ store, source: 'vhdvm', out: back, format: 'raw' });
  t.equal(sha256(back), sha256(d1));
  t.same(await listSources({ store }), ['vhdvm', 'vm']);
  t.equal((await listPoints({ store, source: 'vm' })).length, 2);
});

t.test('AbortSignal cancels a backup: nothing committed, no packs left', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const d = join(dir, 'd.raw');
  generateDisk(d, 64 * MiB, 9);
  const ac = new AbortController();
  const run = backup({ store, source: 'vm', disks: fileRefs([d]), signal: ac.signal, progress: (p) => { if (p.bytesDone > 8 * MiB) ac.abort(); } });
  await t.rejects(run, { code: 'SV_ERR_CORE_CANCELLED' });
  t.same(await listPoints({ store, source: 'vm' }), []);
  t.same(readdirSync(join(store, 'packs')), [], 'the cancelled run removed its packs');
  const ok = await backup({ store, source: 'vm', disks: fileRefs([d]) });
  t.equal(ok.kind, 'initial', 'the next run completes');
});

t.test('check repairs a replica whose blocks were lost; verify names missing blocks', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const d = join(dir, 'd.raw');
  generateDisk(d, 16 * MiB, 4);
  await backup({ store, source: 'vm', disks: fileRefs([d]) });
  // lose every pack but keep the index: blocks the index names are gone
  for (const f of readdirSync(join(store, 'packs'))) rmSync(join(store, 'packs', f));
  const v = await verify({ store });
  t.ok(v.bad.length > 0, `verify reports ${v.bad.length} bad blobs`);
  t.ok(v.bad.every((b) => b.points.length === 1));
  const c = await check({ store, source: 'vm', disks: fileRefs([d]) });
  t.equal(c.kind, 'consistency-check');
  t.ok(c.blocksRepaired > 0, `check rewrote ${c.blocksRepaired} blocks`);
  t.same((await verify({ store })).bad, [], 'clean after the check');
  const out = join(dir, 'o.raw');
  await restore({ store, source: 'vm', out });
  t.equal(sha256(out), sha256(d));
  const pr = await prune({ store, source: 'vm', retention: { maxCount: 1 } });
  t.equal(pr.removed.length, 1);
  const g = await gc({ store });
  t.ok(g.pointsMarked === 1);
  t.same((await verify({ store, samplePercent: 50 })).bad, [], 'sampled verify');
  writeFileSync(join(dir, 'done'), '');
});
