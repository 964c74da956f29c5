/**
 * Replica VMs (issue 11 §6), with real QEMU and a real qemu-storage-daemon (qsd):
 *
 *   primary   a writer-guest VM (TCG); its disk replicated by `blockdev-mirror` (sync full, copy-mode
 *             write-blocking) to an NBD export of the qsd below; a second QMP monitor for the secondary's agent
 *   secondary a qsd that writes the replica's disk file; an agent (child process) declaring the replica
 *             (--replica), paired with a real appliance
 *
 * - While the mirror still copies (its speed limited), the agent reports the replica 'resynchronising' and a
 *   backup is refused with SV_ERR_HYPERVISOR_REPLICA_RESYNCING; nothing is left fenced.
 * - Once the mirror is ready ('replicating'), backups run from the fenced replica: crash-consistent, reason
 *   "replica"; the restored disk passes the writer rule while the guest keeps writing.
 * - The agent killed with SIGKILL while it holds the replica fenced (SV_REPLICA_KILL_ROUNDS, default 5): the
 *   restarted agent merges the fence back; no sv- node, export or job is left in the qsd, the replication
 *   export is on the replica node again, the mirror still ready, earlier points unchanged and restorable, and
 *   the next points pass the writer rule, the second one incremental (the bitmaps an earlier run left are
 *   repaired; test/hypervisor/replica-fence.test.ts has the merged-overlay case that corrupted points before).
 * - With the primary paused, a point restores to exactly the primary's disk (SHA-256).
 * - The mirror cancelled: the replica's state is 'unknown' and a backup is refused
 *   (SV_ERR_HYPERVISOR_REPLICA_STATE_UNKNOWN).
 * - A second replica (`replica-vm2`, its own qsd) of the Linux guest (ext4, qemu-ga, checksummed files;
 *   test/helpers/linux-guest.ts), served by the same agent: crash-consistent points, reason "replica", whose
 *   restores pass `e2fsck -fn` after a journal replay and the checksums; the agent killed with SIGKILL while it
 *   holds that replica fenced: merged back, its earlier points restore, and its next point passes them too.
 * Points after the first are incremental from the replica node's tracking bitmap in the qsd.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import type { QmpClient } from '../../src/qemu/qmp.js';
import { queryBlockExports, queryBlockJobs, queryNamedBlockNodes } from '../../src/qemu/qmp-commands.js';
import { requireTool, run } from '../helpers/env.js';
import { startQsd, type Qsd } from '../helpers/qsd.js';
import { checkLinuxImage, linuxVmOptions, makeExt4Disk, waitForGuestFiles, type LinuxVmOptions } from '../helpers/linux-guest.js';
import { LINUX_PACE_S } from '../helpers/guests.js';
import { startVm, type Vm } from '../helpers/vm.js';
import { checkWriterImage, makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { until } from '../agent/helpers.js';
import { backupAtMoment, startAgentChild, startRig, type AgentChildOptions, type AgentProcess, type Rig } from '../agent/vm-e2e-helpers.js';

const ROUNDS = Number(process.env.SV_REPLICA_KILL_ROUNDS ?? 5);
const REPLICA_ID = 'replica-vm1';

t.teardown(() => closePool());
const top = t;
// The setup runs in t.before: a throw anywhere in it fails the file and tap still runs the teardowns, which stop
// every process started so far (startRig, startQsd, startVm and startAgentChild register the stop with
// t.teardown in the same synchronous step that spawns the process). A throw at the top level ended the process
// before tap ran them: its qemu-storage-daemons and QEMUs were left running.
let rig: Rig;
let qsd: Qsd;
let qsdTest: QmpClient;
let primaryDisk: string;
let statusQmp: string;
let primary: Vm;
let ringFull: Promise<number>;
let qsd2: Qsd;
let qsd2Test: QmpClient;
let linuxOpts: LinuxVmOptions;
let linuxStatusQmp: string;
let linuxPrimary: Vm;
let agentOpts: AgentChildOptions;
let agent: AgentProcess;
let source: { id: string; name: string };
t.before(async () => {
  rig = await startRig(t);
  /** A secondary: the replica's disk file in `folder`, written by a qsd of its own (its node `node`); the test's monitor. */
  const secondary = async (folder: string, vmName: string, node: string): Promise<{ qsd: Qsd; test: QmpClient }> => {
    const dir = join(rig.dir, folder);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${vmName}-replica.raw`);
    run(requireTool('qemu-img'), ['create', '-q', '-f', 'raw', file, '64M']);
    const d = await startQsd(t, { dir, disk: file, node, monitors: ['agent', 'test'] });
    const test = await d.connect('test');
    t.teardown(() => test.close());
    return { qsd: d, test };
  };
  const primaryDir = join(rig.dir, 'primary');
  mkdirSync(primaryDir, { recursive: true });
  ({ qsd, test: qsdTest } = await secondary('secondary', 'vm1', 'replica0'));

  // the primary: the writer guest, with a monitor for the secondary's agent
  primaryDisk = makeWriterDisk(join(primaryDir, 'vm1.raw'), 'raw');
  statusQmp = join(primaryDir, 'vm1-replication.qmp');
  primary = await startVm(t, { dir: primaryDir, name: 'vm1', memoryMb: 32, disks: [{ path: primaryDisk, format: 'raw' }], extraArgs: ['-qmp', `unix:${statusQmp},server=on,wait=off`] });
  ringFull = waitForHeader(primaryDisk, 300, 'raw', 240_000);
  ringFull.catch(() => undefined); // awaited by its subtest; a setup throw meanwhile must not leave it unhandled
  await primary.qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': 'repl-target', server: { type: 'unix', path: qsd.nbdSocket }, export: 'replica0' });
  // slow at first: the replication stays resynchronising until the test lifts the limit
  await primary.qmp.execute('blockdev-mirror', { 'job-id': 'repl0', device: 'disk0', target: 'repl-target', sync: 'full', 'copy-mode': 'write-blocking', speed: 4096 });

  // the Linux guest's replication: its own secondary qsd, mirrored at full speed from the start
  const linuxPrimaryDir = join(rig.dir, 'primary-linux');
  mkdirSync(linuxPrimaryDir, { recursive: true });
  ({ qsd: qsd2, test: qsd2Test } = await secondary('secondary-linux', 'vm2', 'replica1'));
  linuxOpts = linuxVmOptions(linuxPrimaryDir, 'vm2', { paceS: LINUX_PACE_S });
  linuxStatusQmp = join(linuxPrimaryDir, 'vm2-replication.qmp');
  linuxPrimary = await startVm(t, {
    dir: linuxPrimaryDir, name: 'vm2', uuid: '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d33', ...linuxOpts, disks: [{ path: makeExt4Disk(join(linuxPrimaryDir, 'vm2.raw')), format: 'raw' }],
    extraArgs: ['-qmp', `unix:${linuxStatusQmp},server=on,wait=off`],
  });
  await linuxPrimary.qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': 'repl-target', server: { type: 'unix', path: qsd2.nbdSocket }, export: 'replica1' });
  await linuxPrimary.qmp.execute('blockdev-mirror', { 'job-id': 'repl1', device: 'disk0', target: 'repl-target', sync: 'full', 'copy-mode': 'write-blocking' });

  agentOpts = {
    appliance: rig.url, dataDir: join(rig.dir, 'agent'), qmp: [], stateDir: join(rig.dir, 'agent-state'), restoreRoots: [], idleMs: 60_000, name: 'secondary',
    replicas: [
      `vm1=qsd=${qsd.monitors.agent},node=replica0,nbd=${qsd.nbdSocket},primary=${statusQmp},job=repl0`,
      `vm2=qsd=${qsd2.monitors.agent},node=replica1,nbd=${qsd2.nbdSocket},primary=${linuxStatusQmp},job=repl1`,
    ],
  };
  agent = startAgentChild(t, { ...agentOpts, pair: await rig.pairCode() });
  await agent.connected();

  await rig.waitVm(REPLICA_ID);
  const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: REPLICA_ID, name: 'vm1-replica' });
  t.equal(added.statusCode, 201, added.body);
  source = added.json() as { id: string; name: string };
});

interface ReplicaVm { id: string; state: string; replica?: { state: string; reason?: string; primary?: { qmp: string; job: string } } }
const seen = (): ReplicaVm | undefined => rig.a.appliance.agents.vms().find((v) => v.id === REPLICA_ID && v.hostConnected) as ReplicaVm | undefined;
const replicaState = (want: string) => until(`replica ${want}`, () => (seen()?.replica?.state === want ? seen() : undefined), 60_000);

interface PointResult { pointId: string; consistency: string; reasons: string[]; blocksChanged: number; disks: Array<{ tracking?: { method: string; reason?: string } }> }

async function points(sourceId = source.id): Promise<string[]> {
  return ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${sourceId}/points`)).json() as { id: string }[]).map((p) => p.id);
}
let linuxSourceId = '';
/** The Linux guest's rule on a point of its replica: crash-consistent, so e2fsck -fn after a journal replay, and the checksums. */
async function linuxRule(pointId: string): Promise<ReturnType<typeof checkLinuxImage>> {
  const out = join(rig.dir, `restore-vm2-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: 'vm2-replica', pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return checkLinuxImage(out, rig.dir, { replayJournal: true });
}
const linuxMirrorReady = async (): Promise<boolean> => (await queryBlockJobs(linuxPrimary.qmp)).some((j) => j.device === 'repl1' && j.ready === true);
async function restore(pointId: string): Promise<string> {
  const out = join(rig.dir, `restore-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return out;
}
const rule = async (pointId: string): Promise<ReturnType<typeof checkWriterImage>> => checkWriterImage(await restore(pointId));
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
/** Nothing of ours in the qsd, and the replication export (`node`) on the replica node. */
async function unfenced(q: QmpClient, node = 'replica0'): Promise<{ ours: string[]; exportNode: string | undefined }> {
  const ours = [
    ...(await queryNamedBlockNodes(q)).map((n) => n['node-name']), ...(await queryBlockExports(q)).map((e) => e.id), ...(await queryBlockJobs(q)).map((j) => j.device),
  ].filter((n) => n.startsWith('sv-'));
  return { ours, exportNode: (await queryBlockExports(q)).find((e) => e.id === node)?.['node-name'] };
}
const mirrorReady = async (): Promise<boolean> => (await queryBlockJobs(primary.qmp)).some((j) => j.device === 'repl0' && j.ready === true);

await t.test('resynchronising: reported, and a backup is refused with a coded reason', async (t) => {
  const vm = await replicaState('resynchronising');
  t.equal(vm.state, 'stopped', 'a replica does not run on the secondary');
  t.match(vm.replica, { state: 'resynchronising', primary: { qmp: statusQmp, job: 'repl0' } }, `inventory: ${vm.replica?.reason}`);
  const cli = await rig.a.call('viewer', 'GET', '/api/v1/vms');
  t.match((cli.json() as ReplicaVm[]).find((v) => v.id === REPLICA_ID), { replica: { state: 'resynchronising' } }, 'GET /api/v1/vms (vms --json) shows the replica state');
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal(job.state, 'failed');
  t.comment(job.log.map((l) => `${l.time} ${l.message}`).join('\n'));
  t.equal(job.error?.code, 'SV_ERR_HYPERVISOR_REPLICA_RESYNCING', job.error?.message ?? '');
  t.match(job.error?.message ?? '', /resynchronising.*consistent with no point in time/su, 'the reason says why');
  t.same(await points(), [], 'no point');
  t.same(await unfenced(qsdTest), { ours: [], exportNode: 'replica0' }, 'nothing fenced or exported');
});

await t.test('replicating: points from the fenced replica, crash-consistent, reason "replica"', async (t) => {
  await primary.qmp.execute('block-job-set-speed', { device: 'repl0', speed: 0 });
  await until('mirror ready', async () => ((await mirrorReady()) ? true : undefined), 120_000);
  await ringFull;
  await replicaState('replicating');
  for (let i = 0; i < 2; i++) {
    const job = await rig.job({ kind: 'backup', sourceId: source.id });
    t.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const point = job.result as unknown as PointResult;
    t.equal(point.consistency, 'crash', `point ${i}: crash-consistent`);
    t.equal(point.disks[0]?.tracking?.method, i === 0 ? 'initial' : 'bitmap', `point ${i}: tracking ${JSON.stringify(point.disks[0]?.tracking)}`);
    t.same(point.reasons, ['replica'], `point ${i}: reason "replica"`);
    const r = await rule(point.pointId);
    t.ok(r.ok, `point ${i} (header ${r.header}) passes the writer rule ${r.problems.join('; ')}`);
  }
  const listed = (await rig.a.call('viewer', 'GET', `/api/v1/sources/${source.id}/points`)).json() as Array<{ consistency?: string; reasons?: string[] }>;
  t.match(listed.at(-1), { consistency: 'crash', reasons: ['replica'] }, 'recorded in the point list');
  t.same(await unfenced(qsdTest), { ours: [], exportNode: 'replica0' }, 'unfenced after the backups');
  t.ok(await mirrorReady(), 'the replication is still running');
});

await t.test('the agent killed with SIGKILL while the replica is fenced', async (t) => {
  for (let round = 0; round < ROUNDS; round++) {
    const before = await points();
    const started = await rig.start({ kind: 'backup', sourceId: source.id });
    // wait for the fence (our export in the qsd), then kill at a different moment each round
    const fenced = await until(`round ${round}: fenced`, async () => ((await unfenced(qsdTest)).ours.length ? true : undefined), 60_000).catch(() => false);
    await sleep(round * 150);
    await agent.kill9();
    const job = await rig.a.appliance.queue.waitFor(started.id);
    const after = await points();
    if (job.state === 'succeeded') t.equal(after.length, before.length + 1, `round ${round}: finished before the kill: one new point`);
    else t.same(after, before, `round ${round}: ${job.error?.code}: no point published, earlier points intact`);
    agent = startAgentChild(top, agentOpts); // lives past this subtest (its teardown would stop it)
    await agent.connected();
    await replicaState('replicating');
    t.same(await unfenced(qsdTest), { ours: [], exportNode: 'replica0' }, `round ${round} (fenced seen: ${fenced}): the restarted agent merged the fence back`);
    t.ok(await mirrorReady(), `round ${round}: the replication still runs`);
  }
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal(job.state, 'succeeded', JSON.stringify(job.error));
  // The restarted agent repairs the bitmaps an earlier run left (a frozen one merged back, tracking.ts): the
  // next point is incremental, or compares digests when the last round published its point before the agent
  // died (the appliance holds the next bitmap's name, the repaired one keeps the frozen one's).
  const tracking = (job.result as unknown as PointResult).disks[0]?.tracking;
  t.ok(tracking?.method === 'bitmap' || tracking?.method === 'digest', `the next point after the rounds: ${tracking?.method}${tracking?.reason ? ` (${tracking.reason})` : ''}`);
  const next = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal((next.result as unknown as PointResult).disks[0]?.tracking?.method, 'bitmap', 'and the point after it is incremental again');
  const ids = await points();
  for (const id of [ids[0]!, ids.at(-2)!, ids.at(-1)!]) {
    const r = await rule(id);
    t.ok(r.ok, `point ${id} restores and passes the writer rule ${r.problems.join('; ')}`);
  }
});

await t.test('the Linux guest\'s replica: crash-consistent points pass e2fsck (journal replayed) and the checksums', async (t) => {
  await waitForGuestFiles(linuxOpts.serialLog, 240_000);
  await until('vm2 mirror ready', async () => ((await linuxMirrorReady()) ? true : undefined), 120_000);
  await until('replica-vm2 replicating', () => (rig.a.appliance.agents.vms().some((v) => v.id === 'replica-vm2' && v.hostConnected && (v as ReplicaVm).replica?.state === 'replicating') ? true : undefined), 60_000);
  const src = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: 'replica-vm2', name: 'vm2-replica' });
  t.equal(src.statusCode, 201, src.body);
  const sourceId = (linuxSourceId = (src.json() as { id: string }).id);
  for (let i = 0; i < 2; i++) {
    const job = await rig.job({ kind: 'backup', sourceId });
    t.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const point = job.result as unknown as PointResult;
    t.same([point.consistency, point.reasons], ['crash', ['replica']], `point ${i}: crash-consistent, reason "replica"`);
    t.equal(point.disks[0]?.tracking?.method, i === 0 ? 'initial' : 'bitmap', `point ${i}: tracking ${JSON.stringify(point.disks[0]?.tracking)}`);
    const r = await linuxRule(point.pointId);
    t.ok(r.ok, `point ${i}: e2fsck -fn clean after a journal replay, ${r.files} files with their checksums ${r.problems.join('; ')}`);
  }
  t.ok(await linuxMirrorReady(), 'the replication still runs');
});

await t.test('the agent killed with SIGKILL while the Linux guest\'s replica is fenced: its next point passes e2fsck and the checksums', async (t) => {
  t.ok(linuxSourceId, 'the Linux guest\'s replica is protected (its subtest ran)');
  const before = await points(linuxSourceId);
  // An incremental's fence can be gone before it is seen: then the backup is simply taken again.
  const jobId = await backupAtMoment(t, rig, linuxSourceId, 'the Linux guest\'s replica fenced', async () => (await unfenced(qsd2Test, 'replica1')).ours.length > 0);
  if (jobId !== undefined) {
    await agent.kill9();
    const job = await rig.a.appliance.queue.waitFor(jobId);
    const after = await points(linuxSourceId);
    if (job.state === 'succeeded') t.equal(after.length, before.length + 1, 'finished before the kill: one new point');
    else t.same(after, before, `${job.error?.code}: no point published, earlier points intact`);
    agent = startAgentChild(top, agentOpts); // lives past this subtest (its teardown would stop it)
    await agent.connected();
  }
  t.ok(jobId !== undefined, 'the agent was killed with the Linux guest\'s replica fenced');
  await until('replica-vm2 replicating', () => (rig.a.appliance.agents.vms().some((v) => v.id === 'replica-vm2' && v.hostConnected && (v as ReplicaVm).replica?.state === 'replicating') ? true : undefined), 60_000);
  t.same(await unfenced(qsd2Test, 'replica1'), { ours: [], exportNode: 'replica1' }, 'the restarted agent merged the fence back');
  t.ok(await linuxMirrorReady(), 'the replication still runs');
  t.ok((await linuxRule(before[0]!)).ok, 'its first point still passes e2fsck and the checksums');
  const job = await rig.job({ kind: 'backup', sourceId: linuxSourceId });
  t.equal(job.state, 'succeeded', JSON.stringify(job.error));
  const point = job.result as unknown as PointResult;
  t.same([point.consistency, point.reasons], ['crash', ['replica']], 'the point after the kill: crash-consistent, reason "replica"');
  const r = await linuxRule(point.pointId);
  t.ok(r.ok, `the point after the kill passes e2fsck -fn after a journal replay, ${r.files} files with their checksums ${r.problems.join('; ')}`);
});

await t.test('with the primary paused, the point is the primary disk, byte for byte', async (t) => {
  await primary.qmp.execute('stop');
  try {
    const job = await rig.job({ kind: 'backup', sourceId: source.id });
    t.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const point = job.result as unknown as PointResult;
    t.equal(point.disks[0]?.tracking?.method, 'bitmap', `incremental: ${point.blocksChanged} block(s) changed`);
    t.equal(sha256(await restore(point.pointId)), sha256(primaryDisk), 'restored point = the primary\'s disk (SHA-256)');
  } finally {
    await primary.qmp.execute('cont');
  }
});

await t.test('replication stopped: state unknown, a backup is refused with a coded reason', async (t) => {
  await primary.qmp.execute('block-job-cancel', { device: 'repl0' });
  await until('mirror gone', async () => ((await queryBlockJobs(primary.qmp)).length === 0 ? true : undefined), 30_000);
  const vm = await replicaState('unknown');
  t.match(vm.replica?.reason ?? '', /no block job repl0/u, `inventory: ${vm.replica?.reason}`);
  const before = await points();
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal(job.error?.code, 'SV_ERR_HYPERVISOR_REPLICA_STATE_UNKNOWN', job.error?.message ?? '');
  t.same(await points(), before, 'no point');
  t.same(await unfenced(qsdTest), { ours: [], exportNode: 'replica0' }, 'nothing fenced or exported');
});
