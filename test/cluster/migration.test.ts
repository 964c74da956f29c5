/**
 * Clusters and live migration inside a cluster (issue 11 §1, §2), end to end with real processes: one
 * appliance, two host agents (node-a, node-b of cluster c1, test/cluster/rig.ts), four writer-guest VMs
 * (TCG, 64 MiB sparse raw disks) on a folder both nodes see at the same path, live migrations driven as a
 * cluster manager drives them (destination `-incoming defer`, `migrate` over a unix socket).
 *
 * - the cluster query: nodes, VMs, where each runs, last point, protection state; `hosts` shows the cluster;
 * - parallel backups across nodes within the limits (per node 1, per cluster 2);
 * - a migration A → B: the appliance follows the VM (same id) with no operator action; the next point runs on
 *   B, is incremental from the bitmap the migration carried (the agent turned the dirty-bitmaps capability
 *   on; raw disks: without it the bitmap would be gone), and only the changed blocks cross the wire;
 * - while the VM is arriving on B (destination in `inmigrate`) the appliance places it on A;
 * - four VMs migrated at once, both directions: every next point on the new node, incremental, consistent;
 * - migrations during a backup: the backup completes (from its view, or retried on the new node) or fails
 *   cleanly; no point lost or published twice; the VM runs, not paused, no export left behind.
 * A fifth VM runs the Linux guest (ext4, qemu-ga, checksummed files; test/helpers/linux-guest.ts) through the
 * same scenarios: backed up in parallel with the others, migrated B → A alone, migrated with the four at once,
 * and migrated during one of its backups.
 * Every restored point passes its guest's rule: the writer's, or the Linux guest's (`e2fsck -fn`, checksums).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { closePool } from '../../src/pool/index.js';
import { queryBlockExports } from '../../src/qemu/qmp-commands.js';
import { cli } from '../api/serve-helper.js';
import { prng } from '../../bench/data.js';
import { CLUSTER, startClusterRig, type ClusterVm } from './rig.js';

t.teardown(() => closePool());
const BS = 64 * 1024;
/** Per call on the channel: JSON headers both ways (measured well under this). */
const CALL_OVERHEAD = 1024;
const RECORD = 41;

interface PointResult { pointId: string; host: string; bytesSent?: number; blocksChanged: number; disks: Array<{ tracking?: { method: string; reason?: string } }> }

const c = await startClusterRig(t);
const DISK_BLOCKS = (64 << 20) / BS;
const all: ClusterVm[] = await c.addVms([
  ...(['node-a', 'node-a', 'node-b', 'node-b'] as const).map((node, i) => ({ name: `w${i}`, uuid: `7d1e0c3a-0000-4000-8000-00000000000${i}`, node })),
  { name: 'l0', uuid: '7d1e0c3a-0000-4000-8000-0000000000f0', node: 'node-b', guest: 'linux' },
]);
const vms = all.slice(0, 4);
const lin = all[4]!;

/** A point of the Linux guest: incremental, only its own writes on the wire, and its restore passes e2fsck and the checksums. */
async function linuxChecks(t: Test, p: PointResult, what: string): Promise<void> {
  t.same(p.disks[0]!.tracking, { method: 'bitmap' }, `${what}: incremental from the carried bitmap`);
  t.ok(p.blocksChanged > 0 && p.blocksChanged < DISK_BLOCKS / 2, `${what}: the guest's writes only (${p.blocksChanged} of ${DISK_BLOCKS} blocks)`);
  const bound = p.blocksChanged * (RECORD + BS) + (p.blocksChanged / 128 + 16) * CALL_OVERHEAD;
  t.ok((p.bytesSent ?? Infinity) <= bound, `${what}: bytes on the wire ${p.bytesSent} <= ${Math.round(bound)}`);
  const r = await c.rule(lin, p.pointId);
  t.ok(r.ok, `${what}: the restored disk passes e2fsck -fn and the checksums ${r.problems.join('; ')}`);
}

async function ok(vm: ClusterVm, what: string): Promise<PointResult> {
  const job = await c.backup(vm);
  if (job.state !== 'succeeded') throw new Error(`${what}: backup of ${vm.name} ${job.state}: ${JSON.stringify(job.error)} ${job.log.map((l) => l.message).join(' | ')}`);
  return job.result as unknown as PointResult;
}

await t.test('cluster query, and parallel backups within the per-node and per-cluster limits', async (t) => {
  const hosts = (await c.rig.a.call('viewer', 'GET', '/api/v1/hosts')).json() as Array<{ name: string; cluster: string | null }>;
  t.same(hosts.map((h) => [h.name, h.cluster]).sort(), [['node-a', CLUSTER], ['node-b', CLUSTER]], 'hosts show their cluster');
  let cl = (await c.clusters()).find((x) => x.name === CLUSTER)!;
  t.same(cl.nodes.map((n) => n.name).sort(), ['node-a', 'node-b'], 'the cluster has both nodes');
  t.equal(cl.vms.length, 5, 'and the five VMs');
  for (const vm of all) {
    const v = cl.vms.find((x) => x.id === vm.uuid)!;
    t.equal(v.runsOn?.host, vm.node, `${vm.name} runs on ${vm.node}`);
    t.equal(v.protection.state, 'not-backed-up-yet', `${vm.name}: protected as a source, no point yet`);
  }
  // all five at once: at most one per node, two in the cluster (so here: one per node at a time)
  const started = await Promise.all(all.map(async (vm) => (await c.rig.a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: vm.sourceId })).json() as { id: string }));
  let maxPerNode = 0;
  let maxTotal = 0;
  const watch = setInterval(() => {
    const now = c.rig.a.appliance.db.jobs.value.filter((j) => j.state === 'running');
    const per = new Map<string, number>();
    for (const j of now) {
      const vm = all.find((v) => v.sourceId === j.sourceId)!;
      per.set(vm.node, (per.get(vm.node) ?? 0) + 1);
    }
    maxPerNode = Math.max(maxPerNode, ...per.values(), 0);
    maxTotal = Math.max(maxTotal, now.length);
  }, 20);
  const jobs = await Promise.all(started.map((j) => c.rig.a.appliance.queue.waitFor(j.id)));
  clearInterval(watch);
  for (const [i, j] of jobs.entries()) {
    t.equal(j.state, 'succeeded', `${all[i]!.name}: ${JSON.stringify(j.error)}`);
    t.equal((j.result as unknown as PointResult).host, all[i]!.node, `${all[i]!.name} backed up on its node`);
  }
  t.ok(maxPerNode <= 1, `at most one backup per node at a time (seen ${maxPerNode})`);
  t.equal(maxTotal, 2, 'two nodes backed up in parallel');
  cl = (await c.clusters()).find((x) => x.name === CLUSTER)!;
  const text = await cli(['clusters'], { SHADOWVAULT_URL: c.rig.url, SHADOWVAULT_TOKEN: c.rig.a.tokens.viewer });
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^cluster c1: node-a runs 2, node-b runs 3$/mu, '`shadowvault clusters` names the nodes');
  for (const vm of all) t.match(text.stdout, new RegExp(`${vm.uuid}  ${vm.name}  on ${vm.node}  protected as "${vm.name}", last point `, 'u'), `and where ${vm.name} runs`);
  for (const vm of all) {
    const v = cl.vms.find((x) => x.id === vm.uuid)!;
    t.equal(v.protection.state, 'protected', `${vm.name}: protected`);
    t.ok(v.protection.lastPoint?.id, `${vm.name}: its last point ${v.protection.lastPoint?.id}`);
  }
});

await t.test('live migration A → B: the next point runs on B, incremental from the carried bitmap', async (t) => {
  // the Linux guest, B → A, at the same time: its next point on A, incremental, its restore passes e2fsck and
  // the checksums
  const linux = (async () => {
    const l = await c.migrate(lin);
    t.ok(l.completed, `Linux guest migrated ${l.error ?? ''}`);
    await c.placedOn(lin, 'node-a');
    const lp = await ok(lin, 'Linux guest after the migration');
    t.equal(lp.host, 'node-a', 'the Linux guest\'s point ran on its new node');
    await linuxChecks(t, lp, 'Linux guest');
  })();
  const vm = vms[0]!;
  await ok(vm, 'before');
  const blocks = [100, 101, 150, 200, 333, 500, 501, 502, 777, 900];
  await c.writeBlocks(vm, blocks.slice(0, 5)); // written on A, before the migration
  const m = await c.migrate(vm);
  t.ok(m.completed, `migration completed ${m.error ?? ''}`);
  await c.writeBlocks(vm, blocks.slice(5)); // and on B, after it
  await c.placedOn(vm, 'node-b');
  const p = await ok(vm, 'after the migration');
  t.equal(p.host, 'node-b', 'the point ran on the new node');
  t.same(p.disks[0]!.tracking, { method: 'bitmap' }, 'incremental from the bitmap the migration carried');
  t.ok(p.blocksChanged >= blocks.length && p.blocksChanged <= blocks.length + 4, `blocks changed: ${p.blocksChanged}`);
  const bound = blocks.length * (RECORD + 200) + 4 * (RECORD + BS) + 16 * CALL_OVERHEAD;
  t.ok((p.bytesSent ?? Infinity) <= bound && (p.bytesSent ?? 0) > 0, `bytes on the wire ${p.bytesSent} <= ${bound}`);
  t.ok((await c.rule(vm, p.pointId)).ok, 'the point restores and passes the writer rule');
  const v = (await c.clusters()).find((x) => x.name === CLUSTER)!.vms.find((x) => x.id === vm.uuid)!;
  t.match(v.seenOn.find((s) => s.host === 'node-a'), { state: 'stopped' }, 'node-a still remembers the VM, stopped');
  t.equal(v.runsOn?.host, 'node-b', 'the cluster query shows where it runs');
  await linux;
});

await t.test('five VMs migrated at once, both directions: each next point on its new node, incremental', async (t) => {
  const from = all.map((v) => v.node); // every VM has a point already (the subtests above)
  const results = await Promise.all(all.map((vm) => c.migrate(vm)));
  for (const [i, vm] of all.entries()) {
    t.ok(results[i]!.completed, `${vm.name} ${from[i]} → ${vm.node}: ${results[i]!.error ?? 'completed'}`);
    await c.placedOn(vm, vm.node);
  }
  // all at once (the per-node limit queues them)
  await Promise.all([...vms.map(async (vm) => {
    const p = await ok(vm, 'after');
    t.equal(p.host, vm.node, `${vm.name}: point on ${vm.node}`);
    t.same(p.disks[0]!.tracking, { method: 'bitmap' }, `${vm.name}: incremental from the carried bitmap`);
    t.ok(p.blocksChanged <= 4, `${vm.name}: only the guest's own writes (${p.blocksChanged} blocks)`);
    t.ok((await c.rule(vm, p.pointId)).ok, `${vm.name}: restores and passes the rule`);
  }), (async () => {
    const lp = await ok(lin, 'Linux guest after');
    t.equal(lp.host, lin.node, `Linux guest: point on ${lin.node}`);
    await linuxChecks(t, lp, 'Linux guest');
  })()]);
});

await t.test('migration during a backup: completes or fails cleanly, never lost or published twice', async (t) => {
  const rand = prng(0x6d696772);
  const rounds = Number(process.env.SV_MIGRATE_ROUNDS ?? 2);
  const outcomes: string[] = [];
  const one = async (vm: ClusterVm, round: number): Promise<void> => {
    const before = await c.points(vm);
    const r1 = await c.rig.a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: vm.sourceId });
    const jobId = (r1.json() as { id: string }).id;
    await sleep(Math.floor(rand() * 1200));
    const from = vm.node;
    const m = await c.migrate(vm);
    const job = await c.rig.a.appliance.queue.waitFor(jobId);
    const after = await c.points(vm);
    const res = job.result as unknown as PointResult | undefined;
    outcomes.push(`${vm.name} ${from}→${m.completed ? vm.node : `${from} (migration refused: ${m.error})`}: job ${job.state}${res ? ` on ${res.host}` : ` ${job.error?.code} ${job.error?.message}`}${job.log.some((l) => /moved from host/.test(l.message)) ? ' (retried on the new node)' : ''}`);
    if (job.state === 'succeeded') {
      t.equal(after.length, before.length + 1, `round ${round}: one new point`);
      const r = await c.rule(vm, res!.pointId);
      t.ok(r.ok, `round ${round} (${vm.name}): it passes the ${vm.guest} guest's rule ${r.problems.join('; ')}`);
    } else {
      t.same(after, before, `round ${round}: ${job.error?.code}: no point published, earlier ones intact`);
      t.comment(job.log.map((l) => `${l.time} ${l.message}`).join('\n'));
    }
    t.ok(await c.running(vm), `round ${round}: the VM runs (not left paused) on ${vm.node}`);
    await c.placedOn(vm, vm.node);
    const next = await ok(vm, `round ${round}, next`);
    t.equal(next.host, vm.node, `round ${round}: the next point runs where the VM is`);
    t.same(await queryBlockExports(vm.qemu.qmp), [], `round ${round}: no export left on the VM's QEMU`);
    const r = await c.rule(vm, next.pointId);
    t.ok(r.ok, `round ${round} (${vm.name}): the next point passes the ${vm.guest} guest's rule ${r.problems.join('; ')}`);
  };
  // the writer guest's rounds, and one round of the Linux guest at the same time
  await Promise.all([(async () => {
    for (let round = 0; round < rounds; round++) await one(vms[1]!, round);
  })(), one(lin, rounds)]);
  t.comment(outcomes.join('\n'));
  for (const vm of [vms[1]!, lin]) {
    const ids = await c.points(vm);
    t.equal(new Set(ids).size, ids.length, `${vm.name}: no point twice`);
    t.ok((await c.rule(vm, ids[0]!)).ok, `${vm.name}: the first point still restores`);
  }
});
