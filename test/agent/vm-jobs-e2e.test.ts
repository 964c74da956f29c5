/**
 * End to end through a real host agent (the rig of vm-e2e-helpers.ts: appliance in this process with its
 * engine thread, the agent as a child process, QEMU TCG running the writer guest with a second, idle data
 * disk of random bytes):
 *
 * - a cancel DURING the transfer (the job is cancelled once its log says the disks' tracking was chosen,
 *   i.e. the engine is reading the view; the data disk has 24 MiB of fresh random changes, so the transfer
 *   lasts): the job ends cancelled, no point is published, the view is aborted and released on the agent
 *   (no export or node of ours left in QEMU), the data disk's tracking bitmap is the one of the last point
 *   again and records (the frozen one was merged back), the VM runs; the next backup uses that bitmap and
 *   its restored data disk equals the disk file;
 * - a consistency check (`check`) of a VM source: a block changed behind QEMU's back (written into the disk
 *   file, so no dirty bitmap sees it) is missed by the next bitmap backup (the restored disk differs: the
 *   test would catch a check that does nothing), and the check compares every block at the source, so its
 *   point restores to the disk file exactly;
 * - a protection group's `disks` filter (device names) on a VM source: only the data disk `vblk1` is backed
 *   up (a point with that one disk, restoring to the disk file), first as a new copy, then by its bitmap; a
 *   filter naming no disk of the VM fails with SV_ERR_CORE_INVALID_ARGUMENT and leaves nothing in QEMU.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import { isOurs, isTrackingBitmap } from '../../src/hypervisor/qemu/names.js';
import { startVm } from '../helpers/vm.js';
import { makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { until } from './helpers.js';
import { startAgentChild, startRig } from './vm-e2e-helpers.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const MiB = 1 << 20;
const BS = 64 * 1024;
const DATA_SIZE = 32 * MiB;

t.teardown(() => closePool());
const rig = await startRig(t);
const vmDir = join(rig.dir, 'vms', 'writer');
mkdirSync(vmDir, { recursive: true });
const disk0 = makeWriterDisk(join(vmDir, 'disk.raw'), 'raw');
const disk1 = join(vmDir, 'data.raw');
writeFileSync(disk1, randomBytes(DATA_SIZE));
const agentQmp = join(rig.dir, 'agent.qmp');
const vm = await startVm(t, { dir: rig.dir, name: 'writer', disks: [{ path: disk0, format: 'raw' }, { path: disk1, format: 'raw' }], extraArgs: ['-qmp', `unix:${agentQmp},server=on,wait=off`] });
await waitForHeader(disk0, 300);
const agent = startAgentChild(t, {
  appliance: rig.url, pair: await rig.pairCode(), dataDir: join(rig.dir, 'agent'), qmp: [agentQmp],
  stateDir: join(rig.dir, 'agent-state'), restoreRoots: [vmDir], idleMs: 60_000,
});
await agent.connected();
await rig.waitVm(VM_ID);
const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: 'writer' });
t.equal(added.statusCode, 201, added.body);
const source = added.json() as { id: string; name: string };

interface PointResult { pointId: string; disks: Array<{ tracking?: { method: string; reason?: string } }> }

async function runJob(kind: 'backup' | 'check'): Promise<PointResult> {
  const job = await rig.job({ kind, sourceId: source.id });
  if (job.state !== 'succeeded') throw new Error(`${kind} ${job.state}: ${JSON.stringify(job.error)} ${job.log.map((l) => l.message).join(' | ')}`);
  return job.result as unknown as PointResult;
}

async function pointIds(): Promise<string[]> {
  return ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${source.id}/points`)).json() as { id: string }[]).map((p) => p.id);
}

/** The data disk (disk 1) of a point, restored from the store. */
async function restoredData(pointId: string, disk = 1): Promise<Buffer> {
  const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId, disk, format: 'raw' }, new AbortController().signal);
  const parts: Buffer[] = [];
  for await (const c of img.stream()) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Tracking bitmaps of the data disk's node (disk1), as QEMU lists them. */
async function dataBitmaps(): Promise<Array<{ name?: string; recording: boolean }>> {
  const node = (await queryNamedBlockNodes(vm.qmp)).find((n) => n['node-name'] === 'disk1');
  return (node?.['dirty-bitmaps'] ?? []).filter((b) => isTrackingBitmap(b.name));
}

/** Rewrite `bytes` of the data disk at `offset` with random data through QEMU (as the guest would). */
async function writeThroughQemu(offset: number, bytes: number): Promise<void> {
  const f = join(rig.dir, `chunk-${offset}.bin`);
  writeFileSync(f, randomBytes(bytes));
  const out = await vm.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk1/virtio-backend "write -s ${f} ${offset} ${bytes}"` });
  if (typeof out === 'string' && /error/i.test(out)) throw new Error(`qemu-io: ${out}`);
}

t.test('a cancel during the transfer aborts the view cleanly', async (t) => {
  await runJob('backup'); // the initial point: the data disk's tracking bitmap starts here
  const before = await pointIds();
  const [tracking] = await dataBitmaps();
  t.ok(tracking?.recording, `the data disk tracks with ${tracking?.name}`);
  await writeThroughQemu(4 * MiB, 24 * MiB);
  const started = await rig.start({ kind: 'backup', sourceId: source.id });
  // Cancel once the tracking is chosen (logged right before the engine reads the view).
  await until('the transfer to start', () => (rig.a.appliance.queue.get(started.id)?.log.some((l) => /^disk .*: (bitmap|digest|initial)/.test(l.message)) ? true : undefined), 60_000);
  const cancel = await rig.a.call('operator', 'POST', `/api/v1/jobs/${started.id}/cancel`, {});
  t.equal(cancel.statusCode, 200, cancel.body);
  const job: Job = await rig.a.appliance.queue.waitFor(started.id);
  t.equal(job.state, 'cancelled', `the job is cancelled (${job.state}: ${JSON.stringify(job.error)})`);
  t.same(await pointIds(), before, 'no point published, earlier points intact');
  await until('the view released on the agent', async () => ((await queryBlockExports(vm.qmp)).length === 0 && !(await queryNamedBlockNodes(vm.qmp)).some((n) => isOurs(n['node-name'])) ? true : undefined), 20_000);
  t.pass('no export and no node of the view left in QEMU');
  const after = await dataBitmaps();
  t.same(after.map((b) => [b.name, b.recording]), [[tracking?.name, true]], 'the bitmap of the last point tracks again (the frozen one was merged back)');
  t.match(await queryStatus(vm.qmp), { status: 'running' }, 'the VM is running');
  const next = await runJob('backup');
  t.equal(next.disks[1]?.tracking?.method, 'bitmap', `the next backup uses the bitmap (${JSON.stringify(next.disks[1]?.tracking)})`);
  t.equal(sha(await restoredData(next.pointId)), sha(readFileSync(disk1)), 'and its data disk restores to the disk file');
});

t.test('check of a VM source compares every block at the source', async (t) => {
  // A block changed behind QEMU's back (the file, not the device): no dirty bitmap records it.
  const fd = openSync(disk1, 'r+');
  writeSync(fd, randomBytes(BS), 0, BS, 9 * BS);
  closeSync(fd);
  await sleep(50);
  const missed = await runJob('backup');
  t.equal(missed.disks[1]?.tracking?.method, 'bitmap');
  t.not(sha(await restoredData(missed.pointId)), sha(readFileSync(disk1)), 'a bitmap backup misses the change (so the check below is what repairs it)');
  const check = await runJob('check');
  t.equal(sha(await restoredData(check.pointId)), sha(readFileSync(disk1)), 'the check point restores to the disk file');
  const ids = await pointIds();
  t.equal(ids[ids.length - 1], check.pointId, 'the check made the newest point');
  const after = await runJob('backup');
  t.same(after.disks.map((d) => d.tracking?.method), ['bitmap', 'bitmap'], `the backup after the check continues from its bitmaps (${JSON.stringify(after.disks.map((d) => d.tracking))})`);
  t.match(await queryStatus(vm.qmp), { status: 'running' }, 'the VM is running');
});

t.test('a protection group\'s disks filter picks VM disks by device name', async (t) => {
  const g = await rig.a.call('admin', 'POST', '/api/v1/groups', { name: 'data-only', members: [source.id], disks: ['vblk1'], syncFrequencyMinutes: 60, recoveryPointTimes: ['20:00'], retention: { days: 14, maxCount: 64 }, enabled: false });
  t.equal(g.statusCode, 201, g.body);
  await writeThroughQemu(2 * MiB, BS);
  const first = await runJob('backup');
  t.same(first.disks.map((d) => d.tracking?.method), ['initial'], `one disk, a new copy of vblk1 (${JSON.stringify(first.disks)})`);
  t.equal(sha(await restoredData(first.pointId, 0)), sha(readFileSync(disk1)), 'its disk 0 is the data disk');
  await writeThroughQemu(3 * MiB, BS);
  const second = await runJob('backup');
  t.same(second.disks.map((d) => d.tracking?.method), ['bitmap'], 'the next one uses vblk1\'s bitmap');
  t.equal(sha(await restoredData(second.pointId, 0)), sha(readFileSync(disk1)), 'and restores to the data disk');
  const upd = await rig.a.call('admin', 'PATCH', `/api/v1/groups/${(g.json() as { id: string }).id}`, { disks: ['nope'] });
  t.equal(upd.statusCode, 200, upd.body);
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  t.equal(job.error?.code, 'SV_ERR_CORE_INVALID_ARGUMENT', `a filter naming no disk of the VM: ${job.error?.message}`);
  await until('the refused view released', async () => ((await queryBlockExports(vm.qmp)).length === 0 && !(await queryNamedBlockNodes(vm.qmp)).some((n) => isOurs(n['node-name'])) ? true : undefined), 20_000);
  t.match(await queryStatus(vm.qmp), { status: 'running' }, 'the VM is running');
});
