/**
 * Migration outside the cluster and storage migration (issue 11 §3), end to end with real processes: the
 * cluster rig (one appliance, node-a and node-b of cluster c1) plus a standalone host `solo` (its own agent, no
 * cluster, its own storage), writer-guest VMs (TCG, 64 MiB sparse raw disks), moves driven as a management tool
 * drives them (mobility.ts: NBD mirror + live migration; mirror + pivot).
 *
 * - out of the cluster, storage included (node-a → solo): the appliance follows the VM (same id, same source,
 *   same series, no operator action; the source is rebound to solo); the next point runs on solo, falls back
 *   to digest comparison at the source with `fallback: storage-migrated` (in the job, `points --json` and
 *   `vms --json`), and sends only the changed blocks; the point after it is incremental from a bitmap again;
 * - storage live migration on the same host (node-a, same QEMU): the same fallback, only changed blocks sent;
 *   then that VM moves on to a node of another cluster (c2), storage included: followed again;
 * - kill -9 of solo's agent during the migrated flow (a storage move, then a backup killed at a random moment;
 *   SV_MOBILITY_KILL_ROUNDS, default 7, 20 with SHADOWVAULT_SOAK=1): earlier points intact, the VM runs (not paused), no export left, the
 *   next point correct.
 * - the Linux guest (ext4, qemu-ga, checksummed files; test/helpers/linux-guest.ts) through the same moves: out of
 *   the cluster with its storage, then a storage live migration on solo, then kill -9 of solo's agent during
 *   its backups (SV_MOBILITY_LINUX_KILL_ROUNDS, default 1, 6 with SHADOWVAULT_SOAK=1).
 * Every point checked restores and passes its guest's rule: the writer's, or `e2fsck -fn` and the checksums.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';

const top = t;
import { closePool } from '../../src/pool/index.js';
import { queryBlockExports } from '../../src/qemu/qmp-commands.js';
import { rank, RUNS } from '../../src/appliance/agents/placement.js';
import { prng } from '../../bench/data.js';
import { cli } from '../api/serve-helper.js';
import { until } from '../agent/helpers.js';
import { startAgentChild } from '../agent/vm-e2e-helpers.js';
import { rounds as soakRounds } from '../helpers/soak.js';
import { startClusterRig, type ClusterVm } from './rig.js';
import { addStandaloneHost, migrateWithStorage, moveStorage, type Whereabouts } from './mobility.js';

t.teardown(() => closePool());
const BS = 64 * 1024;
const DISK = 64 << 20;
/** Per call on the channel: JSON headers both ways (measured well under this). */
const CALL_OVERHEAD = 1024;
const RECORD = 41;

interface PointResult {
  pointId: string; host: string; movedFrom?: string; bytesSent?: number; blocksChanged: number;
  disks: Array<{ tracking?: { method: string; reason?: string; fallback?: string } }>;
}

const c = await startClusterRig(t);
const [m0, m1, ml] = await c.addVms([
  { name: 'm0', uuid: '7d1e0c3a-0000-4000-8000-0000000000a0', node: 'node-a' },
  { name: 'm1', uuid: '7d1e0c3a-0000-4000-8000-0000000000a1', node: 'node-a' },
  { name: 'ml', uuid: '7d1e0c3a-0000-4000-8000-0000000000af', node: 'node-a', guest: 'linux' },
]) as [ClusterVm, ClusterVm, ClusterVm];
const solo = await addStandaloneHost(t, c, 'solo');
const where = new Map<ClusterVm, Whereabouts>([m0, m1, ml].map((vm) => [vm, { host: 'node-a', disk: vm.disk }]));

async function ok(vm: ClusterVm, what: string): Promise<PointResult> {
  const job = await c.backup(vm);
  if (job.state !== 'succeeded') throw new Error(`${what}: backup of ${vm.name} ${job.state}: ${JSON.stringify(job.error)} ${job.log.map((l) => l.message).join(' | ')}`);
  return job.result as unknown as PointResult;
}

/** Digest comparison sends the old digests (32 bytes a block) and only the changed blocks (at most raw). */
function wireBound(p: PointResult): number {
  return p.blocksChanged * (RECORD + BS + 64) + (DISK / BS) * 32 + (DISK / (8 << 20) + 8) * CALL_OVERHEAD;
}

/** The appliance's view: the VM runs on `host` and no host of its old place says it runs it. */
async function settledOn(vm: ClusterVm, host: string): Promise<void> {
  await until(`${vm.name} running on ${host} only`, () => {
    const seen = c.rig.a.appliance.agents.vms().filter((v) => v.id === vm.uuid && v.hostConnected);
    return seen.some((v) => v.host === host && rank(v) === RUNS) && seen.every((v) => v.host === host || rank(v) < RUNS) ? true : undefined;
  }, 30_000);
}

/**
 * One kill round: a backup of `vm` started through the API, the solo host's agent killed -9 after a random
 * delay of up to 1.5 s, then the job's end checked (a finished job made one point, a failed one none and left
 * the earlier points as they were) and the agent started again, the VM settled on solo. Returns whether the
 * kill came mid-backup.
 */
async function killAgentDuringBackup(t: Test, vm: ClusterVm, round: number, rand: () => number, outcomes?: string[]): Promise<boolean> {
  const before = await c.points(vm);
  const started = (await c.rig.a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: vm.sourceId })).json() as { id: string };
  await sleep(Math.floor(rand() * 1500));
  await solo.agent.kill9();
  const job = await c.rig.a.appliance.queue.waitFor(started.id);
  const after = await c.points(vm);
  outcomes?.push(`round ${round}: job ${job.state}${job.error ? ` ${job.error.code}` : ''}`);
  const midway = job.state !== 'succeeded';
  if (!midway) t.equal(after.length, before.length + 1, `round ${round}: finished before the kill: one new point`);
  else t.same(after, before, `round ${round}: ${job.error?.code}: no point published, earlier points intact`);
  solo.agent = startAgentChild(top, solo.agentOpts);
  await solo.agent.connected();
  await settledOn(vm, 'solo');
  return midway;
}

await t.test('out of the cluster, storage included: the series continues on the standalone host with only changed blocks', async (t) => {
  const first = await ok(m0, 'before');
  t.equal(first.host, 'node-a');
  const blocks = [100, 101, 150, 200, 333, 500, 501, 502, 777, 900];
  await c.writeBlocks(m0, blocks.slice(0, 5)); // on node-a, before the move
  await migrateWithStorage(top, c, m0, where.get(m0)!, solo);
  t.equal(where.get(m0)!.disk, join(solo.storage, 'm0.raw'), 'the disk is now in solo\'s storage');
  await c.writeBlocks(m0, blocks.slice(5)); // on solo, after it
  await settledOn(m0, 'solo');
  const p = await ok(m0, 'after the move');
  t.equal(p.host, 'solo', 'the point ran on the standalone host');
  t.equal(p.movedFrom, 'node-a', 'the job says where the VM came from');
  const tr = p.disks[0]!.tracking!;
  t.equal(tr.method, 'digest', `digest comparison at the source: ${tr.reason}`);
  t.equal(tr.fallback, 'storage-migrated', 'the fallback reason is recorded');
  t.ok(p.blocksChanged >= blocks.length && p.blocksChanged <= blocks.length + 4, `only the changed blocks: ${p.blocksChanged}`);
  t.ok((p.bytesSent ?? Infinity) <= wireBound(p) && (p.bytesSent ?? 0) > 0, `bytes on the wire ${p.bytesSent} <= ${wireBound(p)} (a full copy would be ${DISK})`);
  t.ok((await c.rule(m0, p.pointId)).ok, 'the point restores and passes the writer rule');
  const src = c.rig.a.appliance.db.sources.value.find((s) => s.id === m0.sourceId)!;
  t.match(src, { host: 'solo', vm: { agentId: solo.agentId, cluster: null } }, 'the source now follows the VM on solo');
  const listed = (await c.rig.a.call('viewer', 'GET', `/api/v1/sources/${m0.sourceId}/points`)).json() as Array<{ id: string; disks: PointResult['disks'] }>;
  t.equal(listed.find((x) => x.id === p.pointId)?.disks[0]?.tracking?.fallback, 'storage-migrated', 'points listing shows the fallback');
  const vms = await cli(['vms', '--json'], { SHADOWVAULT_URL: c.rig.url, SHADOWVAULT_TOKEN: c.rig.a.tokens.viewer });
  t.equal(vms.code, 0, vms.stderr);
  const row = (JSON.parse(vms.stdout) as Array<{ id: string; host: string; protection?: { lastPoint: { id: string; tracking: Array<{ fallback?: string }> } } }>).find((v) => v.id === m0.uuid && v.host === 'solo');
  t.match(row?.protection?.lastPoint, { id: p.pointId, tracking: [{ fallback: 'storage-migrated' }] }, '`vms --json` shows it too');
  const next = await ok(m0, 'the one after');
  t.same([next.host, next.disks[0]!.tracking], ['solo', { method: 'bitmap' }], 'the next point is incremental from a bitmap again');
  t.ok((await c.rule(m0, next.pointId)).ok, 'and passes the rule');
});

await t.test('storage live migration on the same host: same QEMU, new file, only changed blocks', async (t) => {
  await ok(m1, 'before');
  const blocks = [120, 121, 400, 640, 1000];
  await c.writeBlocks(m1, blocks.slice(0, 2));
  await moveStorage(m1, where.get(m1)!, join(c.shared, 'm1-moved.raw'));
  await c.writeBlocks(m1, blocks.slice(2));
  const p = await ok(m1, 'after the storage move');
  t.equal(p.host, 'node-a', 'still on its node');
  t.equal(p.movedFrom, undefined, 'not a move between hosts');
  t.match(p.disks[0]!.tracking, { method: 'digest', fallback: 'storage-migrated', reason: /m1-moved\.raw/u }, 'digest comparison, the reason names the new file');
  t.ok(p.blocksChanged >= blocks.length && p.blocksChanged <= blocks.length + 4, `only the changed blocks: ${p.blocksChanged}`);
  t.ok((p.bytesSent ?? Infinity) <= wireBound(p), `bytes on the wire ${p.bytesSent} <= ${wireBound(p)}`);
  t.ok((await c.rule(m1, p.pointId)).ok, 'the point restores and passes the writer rule');
  const next = await ok(m1, 'the one after');
  t.same(next.disks[0]!.tracking, { method: 'bitmap' }, 'then incremental from the new disk\'s bitmap');
  t.same(await queryBlockExports(m1.qemu.qmp), [], 'no export left');
});

await t.test('then to another cluster, storage included: the series follows again', async (t) => {
  // m1's disk is the mirror target node now (mv-disk-*), the destination's is disk0: the bitmap cannot land
  // on a node of the same name there (QEMU drops it and the migration goes on); the point falls back anyway.
  const x1 = await addStandaloneHost(top, c, 'x1', 'c2');
  await c.writeBlocks(m1, [222, 888]);
  await migrateWithStorage(top, c, m1, where.get(m1)!, x1);
  await settledOn(m1, 'x1');
  const p = await ok(m1, 'after the move to c2');
  t.same([p.host, p.movedFrom], ['x1', 'node-a'], 'on x1 (cluster c2), from node-a');
  t.match(p.disks[0]!.tracking, { method: 'digest', fallback: 'storage-migrated' });
  t.ok(p.blocksChanged >= 2 && p.blocksChanged <= 2 + 4, `only the changed blocks: ${p.blocksChanged}`);
  t.ok((p.bytesSent ?? Infinity) <= wireBound(p), `bytes on the wire ${p.bytesSent} <= ${wireBound(p)}`);
  t.ok((await c.rule(m1, p.pointId)).ok, 'the point restores and passes the writer rule');
  t.match(c.rig.a.appliance.db.sources.value.find((s) => s.id === m1.sourceId), { host: 'x1', vm: { agentId: x1.agentId, cluster: 'c2' } }, 'the source follows it to c2');
});

/** A point of the Linux guest after a move: digest comparison at the source, only its own writes, restore clean. */
async function linuxMoved(t: Test, p: PointResult, what: string): Promise<void> {
  t.match(p.disks[0]!.tracking, { method: 'digest', fallback: 'storage-migrated' }, `${what}: digest comparison, fallback recorded`);
  t.ok(p.blocksChanged > 0 && p.blocksChanged < DISK / BS / 2, `${what}: only the guest's writes (${p.blocksChanged} blocks)`);
  t.ok((p.bytesSent ?? Infinity) <= wireBound(p), `${what}: bytes on the wire ${p.bytesSent} <= ${wireBound(p)} (a full copy would be ${DISK})`);
  const r = await c.rule(ml, p.pointId);
  t.ok(r.ok, `${what}: the restored disk passes e2fsck -fn and the checksums ${r.problems.join('; ')}`);
}

await t.test('the Linux guest out of the cluster with its storage, then storage live migration: e2fsck and checksums', async (t) => {
  const first = await ok(ml, 'Linux guest before');
  t.equal(first.host, 'node-a');
  await migrateWithStorage(top, c, ml, where.get(ml)!, solo);
  await settledOn(ml, 'solo');
  const p = await ok(ml, 'Linux guest after the move');
  t.same([p.host, p.movedFrom], ['solo', 'node-a'], 'the point ran on solo, moved from node-a');
  await linuxMoved(t, p, 'out of the cluster');
  await moveStorage(ml, where.get(ml)!, join(solo.storage, 'ml-moved.raw'));
  const q = await ok(ml, 'Linux guest after the storage move');
  t.equal(q.host, 'solo');
  await linuxMoved(t, q, 'storage live migration');
  t.same(await queryBlockExports(ml.qemu.qmp), [], 'no export left');
});

await t.test('kill -9 of the agent during the migrated flow: earlier points intact, nothing paused or exported', async (t) => {
  const rand = prng(0x6d6f7665);
  const rounds = Number(process.env.SV_MOBILITY_KILL_ROUNDS ?? soakRounds(7, 20));
  const at = where.get(m0)!;
  let midway = 0;
  const outcomes: string[] = [];
  for (let round = 0; round < rounds; round++) {
    await moveStorage(m0, at, join(solo.storage, `m0-r${round}.raw`));
    await c.writeBlocks(m0, [300 + round, 700 + round]);
    if (await killAgentDuringBackup(t, m0, round, rand, outcomes)) midway++;
    t.ok(await c.running(m0), `round ${round}: the VM runs, not paused`);
    const next = await ok(m0, `round ${round}, next`);
    t.equal(next.host, 'solo');
    t.equal(next.disks[0]!.tracking?.method === 'bitmap' || next.disks[0]!.tracking?.fallback === 'storage-migrated', true, `round ${round}: ${JSON.stringify(next.disks[0]!.tracking)}`);
    t.ok(next.blocksChanged <= 2 + 4, `round ${round}: only changed blocks (${next.blocksChanged})`);
    t.same(await queryBlockExports(m0.qemu.qmp), [], `round ${round}: no export left on the VM's QEMU`);
    t.ok((await c.rule(m0, next.pointId)).ok, `round ${round}: the next point passes the rule`);
  }
  t.comment(outcomes.join('\n'));
  t.comment(`${midway} of ${rounds} rounds killed the agent mid-backup`);
  const all = await c.points(m0);
  t.equal(new Set(all).size, all.length, 'no point twice');
  t.ok((await c.rule(m0, all[0]!)).ok, 'the first point (taken on node-a) still restores');
});

await t.test('kill -9 of the agent during backups of the Linux guest: the next point passes e2fsck and the checksums', async (t) => {
  const rand = prng(0x6c696e78);
  const rounds = Number(process.env.SV_MOBILITY_LINUX_KILL_ROUNDS ?? soakRounds(1, 6));
  for (let round = 0; round < rounds; round++) {
    await killAgentDuringBackup(t, ml, round, rand);
    t.ok(await c.running(ml), `round ${round}: the Linux guest runs, not paused`);
    const next = await ok(ml, `round ${round}, next`);
    t.equal(next.host, 'solo');
    t.same(await queryBlockExports(ml.qemu.qmp), [], `round ${round}: no export left on the VM's QEMU`);
    const r = await c.rule(ml, next.pointId);
    t.ok(r.ok, `round ${round}: the next point passes e2fsck -fn and the checksums ${r.problems.join('; ')}`);
  }
  const ids = await c.points(ml);
  t.equal(new Set(ids).size, ids.length, 'no point twice');
  t.ok((await c.rule(ml, ids[0]!)).ok, 'the first point (taken on node-a) still restores');
});
