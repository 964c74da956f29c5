/**
 * End to end, VM sources through a real host agent: a real appliance (engine in its own thread, the agent
 * calls relayed to it), a real agent process (HostAgent + the QEMU driver + the agent methods, its own worker
 * pool), a real QEMU (TCG) running the 512-byte writer guest (no guest agent: the offline path). One boot of
 * the guest for the whole file (a second QEMU start only for the restart case).
 *
 * - ≥10 successive points while the guest writes: each restored disk passes the writer rule;
 * - change tracking: N known blocks written after a point → the next point reads and sends only those (plus
 *   what the guest wrote meanwhile): bytes on the wire ≤ their compressed size + record and call overhead;
 * - QEMU restarted (raw disk: the bitmap is gone) → digest comparison at the source, with the reason, and
 *   still only changed blocks on the wire;
 * - the agent killed with SIGKILL at random moments of a backup, many rounds: no point published, earlier
 *   points intact, the VM running (never left paused), the next backup correct after the agent restarts;
 * - the connection cut mid-transfer: the same;
 * - restore back to the host, next to the VM's disk;
 * - security: a second agent reporting the same VM id is refused, the job still goes to the VM's host; a VM
 *   that no connected agent reports fails with SV_ERR_AGENT_NO_HOST.
 */
import { closeSync, createWriteStream, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { queryStatus } from '../../src/qemu/qmp-commands.js';
import { prng } from '../../bench/data.js';
import { startVm, type Vm } from '../helpers/vm.js';
import { HEADER_LBA, RING_LBA, RING_SLOTS, SECTOR, checkWriterImage, makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { FixedDriver, startAgent, until, vm as fixedVm } from './helpers.js';
import { startAgentChild, startRig, tcpProxy, type AgentProcess } from './vm-e2e-helpers.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const BS = 64 * 1024;
/** Per call on the channel: JSON headers both ways (measured well under this). */
const CALL_OVERHEAD = 1024;
const RECORD = 41;

t.teardown(() => closePool());
const top = t;
/** Debugging aid: SV_E2E_ONLY=REGEX runs only the subtests whose name matches it (default: all). */
const only = process.env.SV_E2E_ONLY;
const test = (name: string, fn: (t: Test) => Promise<void>): void => {
  if (!only || new RegExp(only).test(name)) void t.test(name, fn);
};

const rig = await startRig(t);
const vmDir = join(rig.dir, 'vms', 'writer');
mkdirSync(vmDir, { recursive: true });
const disk = makeWriterDisk(join(vmDir, 'disk.raw'), 'raw');
const agentQmp = join(rig.dir, 'agent.qmp');
const startWriter = (): Promise<Vm> => startVm(t, { dir: rig.dir, name: 'writer', disks: [{ path: disk, format: 'raw' }], extraArgs: ['-qmp', `unix:${agentQmp},server=on,wait=off`] });
let vm = await startWriter();
await waitForHeader(disk, 300);

const proxy = await tcpProxy(t, Number(new URL(rig.url).port));
const agentOpts = {
  appliance: `http://127.0.0.1:${proxy.port}`, dataDir: join(rig.dir, 'agent'), qmp: [agentQmp],
  stateDir: join(rig.dir, 'agent-state'), restoreRoots: [join(rig.dir, 'vms')], idleMs: 60_000,
};
let agent: AgentProcess = startAgentChild(t, { ...agentOpts, pair: await rig.pairCode() });
await agent.connected();
await rig.waitVm(VM_ID);

const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: 'writer' });
t.equal(added.statusCode, 201, added.body);
const source = added.json() as { id: string; name: string; vm: { id: string } };

interface PointDisk { tracking?: { method: string; reason?: string }; bytesSent?: number; stats?: { blocksChanged: number; bytesRead: number } }
interface PointResult { pointId: string; consistency: string; reasons: string[]; pauseMs?: number; bytesSent?: number; blocksChanged: number; disks: PointDisk[]; host: string }

async function backup(): Promise<{ job: Job; point: PointResult }> {
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  if (job.state !== 'succeeded') throw new Error(`backup ${job.state}: ${JSON.stringify(job.error)} ${job.log.map((l) => l.message).join(' | ')}`);
  return { job, point: job.result as unknown as PointResult };
}

async function points(): Promise<string[]> {
  return ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${source.id}/points`)).json() as { id: string }[]).map((p) => p.id);
}

/** Restore a point's disk from the store (raw) and check the writer rule on it. */
async function restoredRule(pointId: string): Promise<ReturnType<typeof checkWriterImage>> {
  const out = join(rig.dir, `restore-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return checkWriterImage(out);
}

async function running(what: string): Promise<void> {
  const s = await queryStatus(vm.qmp);
  t.match(s, { running: true, status: 'running' }, `${what}: the VM is running (not left paused)`);
}

/** Write `blocks` (64 KiB each, a distinct pattern each) through QEMU, as the guest would. */
async function writeBlocks(blocks: number[]): Promise<void> {
  for (const [i, b] of blocks.entries()) {
    const out = await vm.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -P ${0x11 + i} ${b * BS} ${BS}"` });
    if (typeof out === 'string' && /error/i.test(out)) throw new Error(`qemu-io: ${out}`);
  }
}

test('10 successive points while the guest writes, each restored passes the writer rule', async (t) => {
  for (let i = 0; i < 10; i++) {
    const { point } = await backup();
    t.equal(point.consistency, 'offline', `point ${i}: offline (no guest agent)`);
    t.ok(point.reasons.length > 0, `point ${i}: reasons recorded (${point.reasons.join('; ')})`);
    t.ok(typeof point.pauseMs === 'number', `point ${i}: pause ${point.pauseMs} ms`);
    t.equal(point.disks[0]!.tracking?.method, i === 0 ? 'initial' : 'bitmap', `point ${i}: tracking ${JSON.stringify(point.disks[0]!.tracking)}`);
    const rule = await restoredRule(point.pointId);
    t.ok(rule.ok, `point ${i} (header ${rule.header}) passes the writer rule ${rule.problems.join('; ')}`);
  }
  await running('after 10 points');
});

test('change tracking: only the blocks written since the last point cross the network', async (t) => {
  await backup();
  const blocks = [100, 101, 150, 200, 333, 500, 501, 502, 777, 900];
  await writeBlocks(blocks);
  const { point } = await backup();
  const d = point.disks[0]!;
  t.equal(d.tracking?.method, 'bitmap');
  // The guest writes its header (block 0) and ring (blocks 16-18) meanwhile: at most 4 more blocks.
  t.ok(point.blocksChanged >= blocks.length && point.blocksChanged <= blocks.length + 4, `blocks changed: ${point.blocksChanged}`);
  t.ok((d.stats?.bytesRead ?? Infinity) <= (blocks.length + 4) * BS * 2, `bytes read at the source: ${d.stats?.bytesRead}`);
  // Pattern blocks compress to a few dozen bytes; the guest's blocks are at most raw.
  const bound = blocks.length * (RECORD + 200) + 4 * (RECORD + BS) + 16 * CALL_OVERHEAD;
  t.ok((point.bytesSent ?? Infinity) <= bound, `bytes on the wire ${point.bytesSent} <= ${bound}`);
  t.ok((point.bytesSent ?? 0) > 0, 'bytes on the wire are recorded');
});

test('restore back to the host, next to the VM\'s disk', async (t) => {
  const { point, job: bj } = await backup();
  t.comment(bj.log.map((l) => `${l.time} ${l.message}`).join('\n'));
  const r = await rig.a.call('operator', 'POST', `/api/v1/sources/${source.id}/points/${point.pointId}/restore`, { toHost: true });
  t.equal(r.statusCode, 202, r.body);
  const job = await rig.a.appliance.queue.waitFor((r.json() as Job).id);
  t.equal(job.state, 'succeeded', JSON.stringify(job.error));
  t.comment(job.log.map((l) => `${l.time} ${l.message}`).join('\n'));
  const res = job.result as { host: string; path: string; bytes: number };
  t.equal(res.host, 'host-e2e');
  t.match(res.path, new RegExp(`^${vmDir}/`), 'written next to the VM\'s disk');
  t.ok(readdirSync(vmDir).some((n) => res.path.endsWith(n)), 'the file is there');
  t.ok(checkWriterImage(res.path).ok, 'and passes the writer rule');
});

test('the agent killed with SIGKILL at random moments of a backup', async (t) => {
  const rand = prng(0x6b696c6c);
  const rounds = Number(process.env.SV_KILL_ROUNDS ?? 20);
  let killedMidway = 0;
  for (let round = 0; round < rounds; round++) {
    const before = await points();
    const started = await rig.start({ kind: 'backup', sourceId: source.id });
    await sleep(Math.floor(rand() * 1500));
    await agent.kill9();
    const job = await rig.a.appliance.queue.waitFor(started.id);
    const after = await points();
    if (job.state === 'succeeded') {
      t.equal(after.length, before.length + 1, `round ${round}: finished before the kill: one new point`);
    } else {
      killedMidway++;
      t.same(after, before, `round ${round}: ${job.error?.code}: no point published, earlier points intact`);
    }
    agent = startAgentChild(top, agentOpts); // lives past this subtest (its teardown would stop it)
    await agent.connected();
    await rig.waitVm(VM_ID);
    await running(`round ${round}, after the agent restarted`);
  }
  t.ok(killedMidway > 0, `${killedMidway} of ${rounds} rounds killed the agent mid-backup`);
  const { point } = await backup();
  const rule = await restoredRule(point.pointId);
  t.ok(rule.ok, `the next backup is correct (${rule.problems.join('; ')})`);
  const ids = await points();
  const first = await restoredRule(ids[0]!);
  t.ok(first.ok, 'the first point still restores and passes the rule');
});

test('the connection cut mid-transfer', async (t) => {
  for (let round = 0; round < 3; round++) {
    const before = await points();
    const started = await rig.start({ kind: 'backup', sourceId: source.id });
    await sleep(100 + round * 200);
    proxy.cut();
    const job = await rig.a.appliance.queue.waitFor(started.id);
    const after = await points();
    if (job.state === 'succeeded') t.equal(after.length, before.length + 1, `round ${round}: finished before the cut`);
    else t.same(after, before, `round ${round}: ${job.error?.code}: no point published`);
    await agent.connected();
    await running(`cut round ${round}`);
  }
  const { point } = await backup();
  t.ok((await restoredRule(point.pointId)).ok, 'the next backup after the agent reconnected is correct');
});

test('QEMU restarted with a raw disk: digest comparison at the source, only changed blocks sent', async (t) => {
  await backup();
  await vm.shutdown();
  // The writer counts from 0 again after a boot: clear its header and ring while QEMU is down (a change made
  // behind the hypervisor's back, which only the digest comparison can see), so the rule holds once it refilled.
  const fd = openSync(disk, 'r+');
  writeSync(fd, Buffer.alloc(SECTOR), 0, SECTOR, HEADER_LBA * SECTOR);
  writeSync(fd, Buffer.alloc(RING_SLOTS * SECTOR), 0, RING_SLOTS * SECTOR, RING_LBA * SECTOR);
  closeSync(fd);
  vm = await startWriter();
  await waitForHeader(disk, 300);
  await rig.waitVm(VM_ID);
  const { point } = await backup();
  const d = point.disks[0]!;
  t.equal(d.tracking?.method, 'digest', `tracking ${JSON.stringify(d.tracking)}`);
  t.ok((d.tracking?.reason ?? '').length > 0, `reason: ${d.tracking?.reason}`);
  const calls = Math.ceil((64 << 20) / (8 << 20)) + 8;
  const digests = ((64 << 20) / BS) * 32;
  const bound = point.blocksChanged * (RECORD + BS + 64) + digests + calls * CALL_OVERHEAD;
  t.ok((point.bytesSent ?? Infinity) <= bound, `bytes on the wire ${point.bytesSent} <= ${bound} (${point.blocksChanged} blocks changed)`);
  t.ok((await restoredRule(point.pointId)).ok, 'and the point passes the rule');
  const next = await backup();
  t.equal(next.point.disks[0]!.tracking?.method, 'bitmap', 'the point after that uses the new bitmap');
});

test('security: another agent claiming the VM gets no job and sends no block; a VM nobody hosts gets SV_ERR_AGENT_NO_HOST', async (t) => {
  const rogue = new FixedDriver([fixedVm(VM_ID, 'writer')]);
  const rogueAgent = await startAgent(t, { appliance: new URL(rig.url), driver: rogue, name: 'rogue-host', pairCode: await rig.pairCode() });
  await sleep(1500);
  const hosts = rig.a.appliance.agents.vms().filter((v) => v.id === VM_ID && v.hostConnected).map((v) => v.host);
  t.same(hosts, ['host-e2e'], 'while the VM\'s host is connected, only it reports the VM');
  const { point } = await backup();
  t.equal(point.host, 'host-e2e', 'the job ran through the VM\'s host');
  const before = await points();
  await agent.stop();
  await until('the rogue agent\'s claim', () => (rig.a.appliance.agents.vms().some((v) => v.id === VM_ID && v.hostConnected && v.host === 'rogue-host') ? true : undefined));
  const claimed = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal(claimed.error?.code, 'SV_ERR_AGENT_VM_NOT_HOSTED', `the host down, another agent claiming the VM gets no job: ${claimed.error?.message}`);
  t.same(await points(), before, 'no point from it');
  await rogueAgent.stop();
  await until('nobody hosts the VM', () => (rig.a.appliance.agents.vms().every((v) => v.id !== VM_ID || !v.hostConnected) ? true : undefined));
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal(job.state, 'failed');
  t.equal(job.error?.code, 'SV_ERR_AGENT_NO_HOST', JSON.stringify(job.error));
});
