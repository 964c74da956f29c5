/**
 * The appliance with the real sync engine: backups of real small disk images through the API, recovery
 * points, restore (one disk, whole VM), image download (raw, VHD checked with qemu-img), verify, gc,
 * retention prunes, the scheduler on a manual clock running real jobs, and the metrics they leave.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ManualClock } from '../../src/appliance/clock.js';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { startTestAppliance, type TestAppliance } from '../api/helpers.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { makeRawImage, sha256, sha256File } from './images.js';

t.teardown(() => closePool());

async function job(a: TestAppliance, body: Record<string, unknown>): Promise<Job> {
  const r = await a.call('operator', 'POST', '/api/v1/jobs', body);
  if (r.statusCode !== 202) throw new Error(`start job: ${r.statusCode} ${r.body}`);
  return a.appliance.queue.waitFor((r.json() as Job).id);
}

async function setup(t: Test, clock?: ManualClock) {
  const dir = tempDir(t, 'sv-eng-');
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), sourceRoots: [dir], deps: { engine: new SyncEngine(join(dir, 'data', 'store')), clock } });
  const d0 = join(dir, 'vm1-disk0.img');
  const d1 = join(dir, 'vm1-disk1.img');
  const c0 = makeRawImage(d0, 4, 2, 1);
  const c1 = makeRawImage(d1, 2, 1, 2);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: d0 }, { name: 'disk1', path: d1 }] })).json() as { id: string };
  return { dir, a, d0, d1, c0, c1, src };
}

t.test('backup, points, restore, download, verify, gc through the API', async (t) => {
  const { dir, a, d0, c0, c1, src } = await setup(t);
  const g = await a.call('admin', 'POST', '/api/v1/groups', { name: 'gold', members: [src.id], syncFrequencyMinutes: 60, recoveryPointTimes: ['20:00'], retention: { days: 30, maxCount: 50 } });
  t.equal(g.statusCode, 201);
  const b1 = await job(a, { kind: 'backup', sourceId: src.id });
  t.equal(b1.state, 'succeeded', JSON.stringify(b1.error));
  t.equal(b1.progress.bytesDone, b1.progress.bytesTotal);
  t.ok(b1.progress.bytesTotal >= 6 << 20, 'progress covered both disks');
  t.match(b1.log.map((l) => l.message).join('\n'), /recovery point .* committed/);
  const dup = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id });
  const second = dup.json() as Job;
  const again = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id });
  t.equal(again.statusCode, 409, 'a second backup of the same source while one is pending');
  t.equal(again.json().code, 'SV_ERR_JOB_SOURCE_BUSY');
  await a.appliance.queue.waitFor(second.id);

  // change disk0, back up again
  const changed = Buffer.from(c0);
  changed.fill(0x5a, 1 << 20, (1 << 20) + 65536);
  writeFileSync(d0, changed);
  const b3 = await job(a, { kind: 'backup', sourceId: src.id });
  t.equal(b3.state, 'succeeded');

  const pts = (await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { id: string; tag: string; disks: { name: string; virtualSize: number }[] }[];
  t.equal(pts.length, 3);
  t.same(pts[0].disks.map((d) => [d.name, d.virtualSize]), [['disk0', 4 << 20], ['disk1', 2 << 20]]);
  t.equal(pts[0].tag, 'manual');
  const one = await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points/${pts[0].id}`);
  t.equal(one.statusCode, 200);

  // restore disk0 of the first point, and the whole VM of the last
  const root = a.appliance.config.restoreRoots[0];
  mkdirSync(root, { recursive: true });
  const r1 = await a.call('operator', 'POST', `/api/v1/sources/${src.id}/points/${pts[0].id}/restore`, { disk: 'disk0', target: join(root, 'first-disk0.img'), format: 'raw' });
  t.equal(r1.statusCode, 202, r1.body);
  const rj = await a.appliance.queue.waitFor((r1.json() as Job).id);
  t.equal(rj.state, 'succeeded', JSON.stringify(rj.error));
  t.equal(sha256File(join(root, 'first-disk0.img')), sha256(c0), 'first point of disk0 restored byte for byte');
  const r2 = await a.call('operator', 'POST', `/api/v1/sources/${src.id}/points/${pts[2].id}/restore`, { target: join(root, 'vm1-latest'), format: 'raw' });
  const rj2 = await a.appliance.queue.waitFor((r2.json() as Job).id);
  t.equal(rj2.state, 'succeeded', JSON.stringify(rj2.error));
  const files = (rj2.result as { files: string[] }).files;
  t.equal(files.length, 2);
  t.equal(sha256File(files[0]), sha256(changed));
  t.equal(sha256File(files[1]), sha256(c1));
  const exists = await a.call('operator', 'POST', `/api/v1/sources/${src.id}/points/${pts[0].id}/restore`, { disk: 'disk0', target: join(root, 'first-disk0.img') });
  const ej = await a.appliance.queue.waitFor((exists.json() as Job).id);
  t.equal(ej.state, 'failed', 'an existing restore target is not overwritten');
  t.equal(ej.error?.code, 'SV_ERR_FORMAT_OUTPUT_EXISTS');

  // download: raw streamed, VHD checked by qemu-img
  const raw = await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[2].id}/disks/disk1/image`);
  t.equal(raw.statusCode, 200);
  t.equal(raw.headers['content-length'], String(2 << 20));
  t.equal(sha256(raw.rawPayload), sha256(c1));
  t.equal((await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points/${pts[2].id}/disks/disk1/image`)).statusCode, 403, 'viewers cannot download data');
  // compression=zstd: one zstd stream (zstd-napi) that the real zstd CLI decodes to the same disk
  const zst = await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[2].id}/disks/disk1/image?compression=zstd`);
  t.equal(zst.statusCode, 200);
  t.equal(zst.headers['content-type'], 'application/zstd');
  t.equal(zst.headers['x-uncompressed-length'], String(2 << 20));
  writeFileSync(join(dir, 'dl.img.zst'), zst.rawPayload);
  run(requireTool('zstd'), ['-d', '-q', '-f', join(dir, 'dl.img.zst'), '-o', join(dir, 'dl-zstd.img')]);
  t.equal(sha256File(join(dir, 'dl-zstd.img')), sha256(c1), 'zstd -d of the compressed download gives the disk');
  t.equal((await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[2].id}/disks/disk1/image?compression=gzip`)).statusCode, 400, 'unknown compression refused');
  const qemuImg = requireTool('qemu-img');
  const vhd = await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[0].id}/disks/disk0/image?format=vhd`);
  t.equal(vhd.statusCode, 200);
  writeFileSync(join(dir, 'dl.vhd'), vhd.rawPayload);
  writeFileSync(join(dir, 'orig0.img'), c0);
  run(qemuImg, ['compare', '-f', 'vpc', '-F', 'raw', join(dir, 'dl.vhd'), join(dir, 'orig0.img')]);
  t.pass('qemu-img compare: downloaded VHD equals the original disk');
  const vhdx = await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[2].id}/disks/disk0/image?format=vhdx`);
  t.equal(vhdx.statusCode, 200);
  writeFileSync(join(dir, 'dl.vhdx'), vhdx.rawPayload);
  writeFileSync(join(dir, 'changed0.img'), changed);
  run(qemuImg, ['compare', '-f', 'vhdx', '-F', 'raw', join(dir, 'dl.vhdx'), join(dir, 'changed0.img')]);
  t.pass('qemu-img compare: downloaded VHDX equals the changed disk');
  t.equal((await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[0].id}/disks/nodisk/image`)).statusCode, 404);

  // consistency check: compares every block with the replica and makes a point
  const ck = await job(a, { kind: 'check', sourceId: src.id });
  t.equal(ck.state, 'succeeded', JSON.stringify(ck.error));
  const afterCheck = (await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { id: string; tag: string }[];
  t.equal(afterCheck.length, 4);
  t.equal(afterCheck[3].id, (ck.result as { pointId: string }).pointId);
  t.equal(afterCheck[3].tag, 'sync', 'a check point is retained like a sync point');

  // verify and gc
  const v = await job(a, { kind: 'verify' });
  t.equal(v.state, 'succeeded', JSON.stringify(v.error));
  t.equal((v.result as { badBlocks: number }).badBlocks, 0);
  const gc = await job(a, { kind: 'gc' });
  t.equal(gc.state, 'succeeded', JSON.stringify(gc.error));
  t.equal((gc.result as { mark: string }).mark, 'full', "the store's first gc builds its reference table");
  const gc2 = await job(a, { kind: 'gc' });
  t.equal((gc2.result as { mark: string }).mark, 'incremental', 'the next one updates it');
  const gc3 = await job(a, { kind: 'gc', full: true });
  t.same([(gc3.result as { mark: string }).mark, (gc3.result as { fullReason: string }).fullReason], ['full', 'requested'], 'full: true rebuilds it');

  await a.appliance.refreshStoreStats();
  const m = (await a.call('viewer', 'GET', '/metrics')).body;
  t.match(m, /shadowvault_last_good_point_timestamp_seconds\{source="vm1",disk="disk0"\} \d/);
  t.match(m, /shadowvault_last_good_point_timestamp_seconds\{source="vm1",disk="disk1"\} \d/);
  t.match(m, /shadowvault_recovery_point_lag_seconds\{source="vm1",disk="disk0"\} /);
  t.match(m, /shadowvault_sync_interval_seconds\{source="vm1",disk="disk0"\} 3600/);
  t.match(m, /shadowvault_backup_read_bytes_total\{source="vm1",disk="disk0"\} [1-9]/);
  t.match(m, /shadowvault_backup_read_bytes_total\{source="vm1",disk="disk1"\} [1-9]/);
  t.notMatch(m, /disk="all"/, 'backup figures are per disk');
  t.match(m, /shadowvault_job_duration_seconds_count\{kind="backup",outcome="succeeded"\} 3/);
  t.match(m, /shadowvault_job_failures_total\{kind="restore",reason="SV_ERR_FORMAT_OUTPUT_EXISTS"\} 1/);
  t.match(m, /shadowvault_store_size_bytes [1-9]/);
  t.match(m, /shadowvault_store_blocks [1-9]/);
  t.match(m, /shadowvault_store_oldest_unverified_block_age_seconds 0/);
  t.match(m, /shadowvault_verify_last_bad_blocks 0/);
  t.match(m, /shadowvault_gc_duration_seconds_count 3/);
  t.match(m, /shadowvault_restore_bytes_total [1-9]/);
  t.match(m, /shadowvault_pool_threads [1-9]/);
});

t.test('retention prunes exactly the expired points; the scheduler runs real jobs on a manual clock', async (t) => {
  const clock = new ManualClock(Date.now());
  const { a, src } = await setup(t, clock);
  const g = (await a.call('admin', 'POST', '/api/v1/groups', { name: 'g', members: [src.id], syncFrequencyMinutes: 15, recoveryPointTimes: ['00:00'], retention: { days: 30, maxCount: 2 } })).json() as { id: string };
  const made: string[] = [];
  const backup = async (tag: 'sync' | 'scheduled') => {
    const j = await a.appliance.enqueue({ kind: 'backup', trigger: tag === 'sync' ? 'sync' : 'recovery-point', sourceId: src.id, groupId: g.id, params: { tag } });
    const done = await a.appliance.queue.waitFor(j.id);
    t.equal(done.state, 'succeeded', JSON.stringify(done.error));
    made.push((done.result as { pointId: string }).pointId);
    await a.appliance.queue.idle();
  };
  await backup('scheduled'); // s0
  await backup('sync'); // y1
  await backup('sync'); // y2
  await backup('scheduled'); // s3: y1, y2 expire (a newer scheduled point exists)
  let ids = ((await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { id: string }[]).map((p) => p.id);
  t.same(ids, [made[0], made[3]], 'sync points before the newest scheduled point were pruned');
  await backup('sync'); // y4
  await backup('scheduled'); // s5: count 2 → s0 expires; y4 expires
  ids = ((await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { id: string }[]).map((p) => p.id);
  t.same(ids, [made[3], made[5]], 'max count keeps the newest two scheduled points');
  const prunes = a.appliance.queue.list().filter((j) => j.kind === 'prune');
  t.ok(prunes.every((p) => p.trigger === 'retention' && p.state === 'succeeded'));
  t.same(prunes.flatMap((p) => (p.result as { removed: string[] }).removed).sort(), [made[0], made[1], made[2], made[4]].sort(), 'exactly the expired points');

  // the scheduler: first tick records the time; 15 minutes later a sync backup runs for real
  const before = a.appliance.queue.list().length;
  await a.appliance.scheduler.tick();
  clock.advance(15 * 60_000);
  await a.appliance.scheduler.tick();
  const sync = a.appliance.queue.list().slice(before);
  t.equal(sync.length, 1);
  t.match(sync[0], { kind: 'backup', trigger: /^(sync|recovery-point)$/ });
  const done = await a.appliance.queue.waitFor(sync[0].id);
  t.equal(done.state, 'succeeded', JSON.stringify(done.error));
});

t.test('a group protecting one disk backs up only that disk; points name it', async (t) => {
  const { a, d1, c1, src } = await setup(t);
  await a.call('admin', 'POST', '/api/v1/groups', { name: 'disk1-only', members: [src.id], syncFrequencyMinutes: 60, recoveryPointTimes: ['20:00'], retention: { days: 30, maxCount: 50 }, disks: ['disk1'] });
  const b = await job(a, { kind: 'backup', sourceId: src.id });
  t.equal(b.state, 'succeeded', JSON.stringify(b.error));
  const pts = (await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { id: string; disks: { name: string; file: string }[] }[];
  t.same(pts[0].disks.map((d) => d.name), ['disk1']);
  t.equal(pts[0].disks[0].file, 'vm1-disk1.img');
  const img = await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[0].id}/disks/disk1/image`);
  t.equal(sha256(img.rawPayload), sha256(c1));
  t.equal((await a.call('operator', 'GET', `/api/v1/sources/${src.id}/points/${pts[0].id}/disks/disk0/image`)).statusCode, 404, 'disk0 is not in the point');
  void d1;
  const m = (await a.call('viewer', 'GET', '/metrics')).body;
  t.match(m, /shadowvault_recovery_point_lag_seconds\{source="vm1",disk="disk1"\}/);
  t.notMatch(m, /shadowvault_recovery_point_lag_seconds\{source="vm1",disk="disk0"\}/);
});
