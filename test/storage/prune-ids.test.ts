/**
 * prune({pointIds}): the engine removes exactly the chosen points (what the appliance's retention asks for)
 * under the source lock; the newest point is kept; an unknown id deletes nothing and is a coded error; a dry
 * run deletes nothing; a held source lock refuses; the points left restore bit-identical, gc then reclaims.
 * The appliance's engine (src/appliance/engine/sync.ts) prunes through it, and a retry that names points already gone (the
 * first attempt crashed half way) succeeds and reports them removed.
 */
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, listPoints, prune, restore, fileRefs } from '../../src/sync/index.js';
import { openStore } from '../../src/sync/backup.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from '../sync/helpers.js';

const MiB = 1 << 20;
t.teardown(closePool);

t.test('prune by point id', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const disk = join(dir, 'd.raw');
  generateDisk(disk, 4 * MiB, 3);
  const ids: string[] = [];
  const hashes: string[] = [];
  for (let day = 0; day < 5; day++) {
    if (day) changeDay(disk, 4 * MiB, 4, day);
    ids.push((await backup({ store, source: 'vm', disks: fileRefs([disk]) })).id);
    hashes.push(sha256(disk));
  }
  const left = async () => (await listPoints({ store, source: 'vm' })).map((p) => p.id);

  const unknown = await prune({ store, source: 'vm', pointIds: [ids[0]!, 'nope-1'] }).catch((e: unknown) => e);
  t.match(unknown, { code: 'SV_ERR_STORE_POINT_NOT_FOUND', details: { ids: ['nope-1'] } });
  t.same(await left(), ids, 'an unknown id: nothing deleted');

  const dry = await prune({ store, source: 'vm', pointIds: [ids[1]!], dryRun: true });
  t.same(dry.removed, [ids[1]]);
  t.same(await left(), ids, 'dry run: nothing deleted');

  const s = await openStore(store);
  const lock = await s.lockSource('vm', 'test');
  const locked = await prune({ store, source: 'vm', pointIds: [ids[1]!] }).catch((e: unknown) => e);
  await lock.release();
  t.match(locked, { code: 'SV_ERR_STORE_LOCKED' });
  t.same(await left(), ids, 'lock held: nothing deleted');

  const aborted = new AbortController();
  aborted.abort();
  const cancelled = await prune({ store, source: 'vm', pointIds: [ids[1]!], signal: aborted.signal }).catch((e: unknown) => e);
  t.match(cancelled, { code: 'SV_ERR_CORE_CANCELLED' });
  t.same(await left(), ids, 'cancelled: nothing deleted');

  const r = await prune({ store, source: 'vm', pointIds: [ids[3]!, ids[1]!, ids[4]!] });
  t.same(r.removed, [ids[1], ids[3]], 'exactly the chosen points, oldest first; the newest is not pruned');
  t.same(r.kept, [ids[0], ids[2], ids[4]]);
  t.same(await left(), r.kept);
  t.same(JSON.parse(JSON.stringify(r)), r, 'plain JSON');

  await gc({ store });
  for (const i of [0, 2, 4]) {
    const out = join(dir, `r${i}.raw`);
    await restore({ store, source: 'vm', point: ids[i], out });
    t.equal(sha256(out), hashes[i], `point ${i} restores bit-identical after prune + gc`);
  }
  const again = await prune({ store, source: 'vm', pointIds: [ids[1]!] }).catch((e: unknown) => e);
  t.match(again, { code: 'SV_ERR_STORE_POINT_NOT_FOUND' }, 'an already pruned point is unknown');
  const none = await prune({ store, source: 'vm', pointIds: [] });
  t.same(none.removed, []);
  t.same(none.kept, [ids[0], ids[2], ids[4]]);
});

t.test('the appliance engine prunes through it; a retry naming points already gone succeeds', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const disk = join(dir, 'd.raw');
  generateDisk(disk, 2 * MiB, 5);
  const ids: string[] = [];
  for (let day = 0; day < 4; day++) {
    if (day) changeDay(disk, 2 * MiB, 10, day);
    ids.push((await backup({ store, source: 'vm', disks: fileRefs([disk]) })).id);
  }
  const engine = new SyncEngine(store);
  const logs: string[] = [];
  const progress: number[][] = [];
  const ctx = { signal: new AbortController().signal, onProgress: (d: number, n: number) => progress.push([d, n]), log: (m: string) => logs.push(m) };
  const first = await engine.prune('vm', [ids[0]!], ctx);
  t.same(first.removed, [ids[0]]);
  // the retry of a job that chose [0, 1, 3] and crashed after deleting 0: 0 counts as removed, 3 is the newest
  const retry = await engine.prune('vm', [ids[0]!, ids[1]!, ids[3]!], ctx);
  t.same(retry.removed.sort(), [ids[0], ids[1]].sort());
  t.match(retry.raw, { kept: 2, alreadyGone: 1 });
  t.same((await listPoints({ store, source: 'vm' })).map((p) => p.id), [ids[2], ids[3]], 'the newest point is never pruned');
  t.match(logs[logs.length - 1], /removed 1 recovery point\(s\) of vm \(1 already gone\)/);
  t.same(progress[progress.length - 1], [3, 3]);
  t.same(await engine.prune('vm', [], ctx), { removed: [], raw: {} });
});
