/**
 * Issue 9, D5: one damaged index segment made every point of every source unrestorable (every restore, backup,
 * verify, gc failed with SV_ERR_STORE_CORRUPT_INDEX). Now the segment is quarantined, what does not need its
 * entries keeps working, gc waits for a repair, and `repair` (CLI, and the appliance's repair job) rebuilds the
 * index from the packs' record headers.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, verify, fileRefs } from '../../src/sync/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { tempDir } from '../helpers/env.js';
import { buildStore, copyStore, damage, key, restoreAll } from '../storage/damage-helpers.js';
import { sv } from '../sync/helpers.js';

t.teardown(() => closePool());

const codeOf = async (fn: () => Promise<unknown>): Promise<string> => fn().then(() => 'ok', (err: { code?: string }) => String(err.code));

t.test('a damaged segment breaks only the points whose blocks it listed; repair brings them back', async (t) => {
  const dir = tempDir(t, 'sv-d5-');
  const built = await buildStore(dir);
  const [a, b, c] = built.points.map(key) as [string, string, string];

  const s = copyStore(built, join(dir, 'flip'));
  damage(s.segmentOf.get(a)!, 'flip', 7);
  t.same(await restoreAll(s, join(dir, 'out')), { [a]: 'SV_ERR_STORE_MISSING_BLOB', [b]: 'SV_ERR_STORE_MISSING_BLOB', [c]: 'ok' }, 'vm2 restores bit-identical; vm1 fails with a coded error');
  const q = readdirSync(join(s.store, 'quarantine'));
  t.ok(q.some((n) => n.endsWith(`-index-${s.segmentOf.get(a)!.split('/').pop()}`)), `the segment is in quarantine/ (${q.join(', ')})`);
  t.equal(await codeOf(() => backup({ store: s.store, source: 'vm2', disks: fileRefs([join(dir, 'b.raw')]) })), 'ok', 'vm2 backs up');
  const v = await verify({ store: s.store });
  t.ok(v.bad.length > 0 && v.bad.every((x) => x.points.every((p) => p.startsWith('vm1@'))), 'verify runs and names vm1 points only');
  t.equal(await codeOf(() => gc({ store: s.store })), 'SV_ERR_STORE_NEEDS_REPAIR', 'gc waits for a repair (it would delete the packs only that segment named)');

  const dry = sv(['repair', '--store', s.store, '--dry-run', '--json']);
  t.equal(dry.code, 0, dry.stderr);
  const dr = JSON.parse(dry.stdout) as { dryRun: boolean; entriesRecovered: number; points: { point: string; status: string }[] };
  t.equal(dr.dryRun, true);
  t.ok(dr.entriesRecovered > 0);
  t.same(dr.points.filter((p) => p.point === a || p.point === b).map((p) => p.status), ['recovered', 'recovered']);
  t.equal((await restoreAll(s, join(dir, 'out')))[a], 'SV_ERR_STORE_MISSING_BLOB', 'a dry run changes nothing');

  const real = sv(['repair', '--store', s.store]);
  t.equal(real.code, 0, real.stderr);
  t.match(real.stdout, new RegExp(`${a}: recovered`));
  t.match(real.stdout, new RegExp(`${c}: intact`));
  t.same(await restoreAll(s, join(dir, 'out')), { [a]: 'ok', [b]: 'ok', [c]: 'ok' }, 'after repair every point restores bit-identical');
  t.notOk(existsSync(join(s.store, 'quarantine', 'needs-repair.json')));
  t.equal(await codeOf(() => gc({ store: s.store })), 'ok', 'gc runs again');
  t.same(await restoreAll(s, join(dir, 'out')), { [a]: 'ok', [b]: 'ok', [c]: 'ok' }, 'and deleted nothing a point needs');
});

t.test('a garbage or truncated segment does not stop anything', async (t) => {
  const dir = tempDir(t, 'sv-d5g-');
  const built = await buildStore(dir);
  const all = Object.fromEntries(built.points.map((p) => [key(p), 'ok']));
  const g = copyStore(built, join(dir, 'garbage'));
  writeFileSync(join(g.store, 'index', '99999999999999999999-000000.idx'), 'garbage');
  t.same(await restoreAll(g, join(dir, 'out')), all, 'a foreign segment is quarantined; every point restores');
  const tr = copyStore(built, join(dir, 'truncated'));
  damage(tr.segmentOf.get(key(built.points[2]!))!, 'truncate');
  const r = await restoreAll(tr, join(dir, 'out'));
  t.same([r[key(built.points[0]!)], r[key(built.points[1]!)]], ['ok', 'ok'], 'vm1 restores while vm2\'s segment is truncated');
});

t.test('the appliance runs repair as a job (dry run, then for real) and counts quarantined files', async (t) => {
  const dir = tempDir(t, 'sv-d5a-');
  const built = await buildStore(dir);
  const s = copyStore(built, join(dir, 'store2'));
  damage(s.packOf.get(key(s.points[2]!))!, 'folder'); // vm2's pack replaced by a folder: repair quarantines it
  damage(s.segmentOf.get(key(s.points[0]!))!, 'garbage');
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), deps: { engine: new SyncEngine(s.store) } });
  const run = async (body: Record<string, unknown>): Promise<Job> => {
    const r = await a.call('operator', 'POST', '/api/v1/jobs', body);
    t.equal(r.statusCode, 202, r.body);
    return a.appliance.queue.waitFor((r.json() as Job).id);
  };
  t.equal((await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'gc', dryRun: true })).statusCode, 400, 'dryRun is for repair only');
  const dry = await run({ kind: 'repair', dryRun: true });
  t.equal(dry.state, 'succeeded', JSON.stringify(dry.error));
  t.equal((dry.result as { dryRun: boolean }).dryRun, true);
  t.ok(existsSync(s.packOf.get(key(s.points[2]!))!), 'the dry run moved nothing');
  const job = await run({ kind: 'repair' });
  t.equal(job.state, 'succeeded', JSON.stringify(job.error));
  const res = job.result as { quarantined: unknown[]; points: { point: string; status: string }[] };
  t.ok(res.quarantined.length >= 1, 'the folder is quarantined');
  t.same(res.points.map((p) => p.status), ['recovered', 'recovered', 'lost'], 'vm1 recovered from its pack, vm2 lost with its pack');
  await a.appliance.refreshStoreStats();
  const m = (await a.call('viewer', 'GET', '/metrics')).body;
  t.match(m, /shadowvault_repair_quarantined_files_total [1-9]/);
  t.match(m, /shadowvault_store_quarantined_files [1-9]/);
});
