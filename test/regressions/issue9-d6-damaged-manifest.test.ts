/**
 * Issue 9, D6: one damaged manifest blocked every point of its source (listing, restore through the API, points
 * of all sources, verify, prune), and a stray points/vm1/garbage.json blocked vm1's backups and the store's gc.
 * Now: the damaged point is listed as damaged with its coded error (CLI and API), every other point works, prune
 * and verify skip it and say so, stray files are ignored with a warning, gc keeps the damaged point's blocks, and
 * `prune NAME --point ID` deletes it explicitly.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, prune, verify, fileRefs } from '../../src/sync/index.js';
import { startTestAppliance } from '../api/helpers.js';
import { tempDir } from '../helpers/env.js';
import { buildStore, copyStore, key, restoreAll } from '../storage/damage-helpers.js';
import { sv } from '../sync/helpers.js';

t.teardown(() => closePool());

t.test('a damaged manifest is listed as damaged; everything else works', async (t) => {
  const dir = tempDir(t, 'sv-d6-');
  const built = await buildStore(dir);
  await gc({ store: built.store }); // the table counts every point
  const s = copyStore(built, join(dir, 's'));
  const [pa, pb, pc] = s.points;
  const [a, b, c] = s.points.map(key) as [string, string, string];
  const manifest = join(s.store, 'points', 'vm1', `${pa!.id}.json`);
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(/"bytesRead": (\d)/, (_m, d: string) => `"bytesRead": ${(Number(d) + 1) % 10}`));
  writeFileSync(join(s.store, 'points', 'vm1', 'garbage.json'), 'not a manifest');

  const listed = sv(['points', '--store', s.store, '--json']);
  t.equal(listed.code, 0, listed.stderr);
  const pts = JSON.parse(listed.stdout) as Array<{ id: string; source: string; damaged?: boolean; error?: { code: string } }>;
  t.same(pts.map((p) => [`${p.source}@${p.id}`, p.damaged === true, p.error?.code ?? null]), [[a, true, 'SV_ERR_STORE_CORRUPT_MANIFEST'], [b, false, null], [c, false, null]]);
  t.match(listed.stderr, /garbage\.json is not a recovery point manifest.*ignored/, 'the stray file is ignored with a warning');
  t.match(sv(['points', '--store', s.store, 'vm1']).stdout, new RegExp(`${a} .* DAMAGED SV_ERR_STORE_CORRUPT_MANIFEST`));
  t.same(await restoreAll(s, join(dir, 'out')), { [a]: 'SV_ERR_STORE_CORRUPT_MANIFEST', [b]: 'ok', [c]: 'ok' });

  const v = await verify({ store: s.store });
  t.same(v.skipped.map((x) => [x.point, x.code]), [[a, 'SV_ERR_STORE_CORRUPT_MANIFEST']], 'verify skips the damaged point and says so');
  t.equal(v.points, 2);
  const p = await prune({ store: s.store, source: 'vm1', retention: { maxCount: 1 } });
  t.same(p.removed, [], 'retention leaves the damaged point alone');
  t.same(p.skipped.map((x) => x.id), [pa!.id]);
  const bk = await backup({ store: s.store, source: 'vm1', disks: fileRefs([join(dir, 'a.raw')]) });
  t.ok(bk.id, 'vm1 backs up despite the stray file');
  const g = await gc({ store: s.store });
  t.equal(g.blobsDeleted, 0, 'gc keeps the damaged point\'s blocks');

  const del = sv(['prune', 'vm1', '--store', s.store, '--point', pa!.id, '--json']);
  t.equal(del.code, 0, del.stderr);
  t.same((JSON.parse(del.stdout) as { removed: string[] }).removed, [pa!.id], 'the operator deletes the damaged point explicitly');
  const g2 = await gc({ store: s.store });
  t.equal(g2.mark, 'incremental');
  t.same(await restoreAll({ ...s, points: [pb!, pc!] }, join(dir, 'out')), { [b]: 'ok', [c]: 'ok' }, 'the other points still restore after gc');
});

t.test('the API lists the damaged point and serves the others', async (t) => {
  const dir = tempDir(t, 'sv-d6a-');
  const built = await buildStore(dir);
  const [pa, pb] = built.points;
  const manifest = join(built.store, 'points', 'vm1', `${pa!.id}.json`);
  writeFileSync(manifest, readFileSync(manifest, 'utf8').slice(0, 100));
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), deps: { engine: new SyncEngine(built.store) }, sourceRoots: [dir] });
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: join(dir, 'a.raw') }], attach: true })).json() as { id: string };
  const r = await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`);
  t.equal(r.statusCode, 200, r.body);
  const pts = r.json() as Array<{ id: string; damaged?: { code: string } }>;
  t.same(pts.map((p) => [p.id, p.damaged?.code ?? null]), [[pa!.id, 'SV_ERR_STORE_CORRUPT_MANIFEST'], [pb!.id, null]]);
  const img = await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pb!.id}/disks/disk0/image`);
  t.equal(img.statusCode, 200, 'the intact point downloads');
  t.equal(img.rawPayload.length, 4 << 20);
  const v = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'verify' });
  const vj = await a.appliance.queue.waitFor((v.json() as Job).id);
  t.equal(vj.state, 'succeeded', JSON.stringify(vj.error));
});
