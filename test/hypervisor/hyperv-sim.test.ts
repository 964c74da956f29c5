/**
 * The Hyper-V driver's whole logic on the SIMULATION (SimulatedHyperVHost: real VHDX/.avhdx files written by the
 * project's VHDX writer, a guest process writing with the shared writer guest's rule, simulated RCT). One
 * simulated VM for the file (64 MiB disk, guest running), plus a stopped one of configuration version 5.0.
 *
 * Proves: online (application-consistent) and offline (save/checkpoint/resume, pauseMs) views are one point in
 * time (the writer rule on the frozen parent while the guest keeps writing to the .avhdx, which is a real
 * VHDX qemu-img reads); an incremental series through RCT restores to exactly the frozen disk (qemu-img
 * compare) and keeps the rule; failures: a driver process kill -9'd between checkpoint and commit (guest thawed,
 * checkpoint cleaned by the next run, series continues), between save and resume (VM resumed by the next
 * cleanup), and after ConvertToReferencePoint (the converted reference point kept, the older destroyed), failed merges (commit and abort fail; the leftover
 * checkpoint is removed later; the old reference point still reports every change), merging left disabled,
 * a VM left saved, leftover reference points, RCT reset (digest fallback with the reason), configuration
 * version < 6.2 (digest fallback); the configuration exported and a VM imported; storage migration (RCT travels
 * with the disk); a clustered VM on two simulated nodes (the owner node backs it up, placement picks it, the
 * other node refuses and leaves the owner's checkpoint alone; after a live migration the new owner continues
 * the RCT series); then the shared driver contract.
 */
import t, { type Test as Tap } from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { hasCode } from '../../src/errors/index.js';
import { openDisk } from '../../src/formats/open.js';
import type { ChangeReference, PointInTimeView } from '../../src/hypervisor/driver.js';
import { HyperVDriver } from '../../src/hypervisor/hyperv/driver.js';
import { appendWrite, rctLogPath } from '../../src/hypervisor/hyperv/sim/rct-log.js';
import { SIM_MAX_RANGES } from '../../src/hypervisor/hyperv/simulated-host.js';
import { guestCall } from '../../src/hypervisor/hyperv/sim/guest-control.js';
import { HyperVStateFile } from '../../src/hypervisor/hyperv/state.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { checkFileView, guestCounter, startSimVm, waitForGuest } from '../helpers/hyperv-sim.js';
import { checkWriterImage } from '../helpers/writer-guest.js';
import { placeVm } from '../../src/appliance/agents/placement.js';
import { driverContract } from './contract.js';

const dir = tempDir(t, 'sv-hv-sim-');
const { host, vmId, vmDir } = await startSimVm(t, dir);
const stateDir = join(dir, 'state');
const driver = new HyperVDriver({ host, stateDir });
t.teardown(() => driver.close());
await waitForGuest(vmDir, 300);
const qemuImg = requireTool('qemu-img');
const restored = join(dir, 'restored.raw');

/** Copy `extents` (or the whole disk) of a view's disk 0 into the raw restore file. */
async function applyView(view: PointInTimeView, extents: ReadonlyArray<readonly [number, number]> | null): Promise<number> {
  const src = view.disks[0]!.source;
  if (src.kind !== 'file') throw new Error('expected a file source');
  const img = await openDisk(src.path);
  const fd = openSync(restored, extents ? 'r+' : 'w');
  let bytes = 0;
  try {
    for (const [off, len] of extents ?? [[0, img.info.virtualSize] as const]) {
      for (let at = off; at < off + len; at += 4 << 20) {
        const n = Math.min(4 << 20, off + len - at);
        writeSync(fd, await img.read(at, n), 0, n, at);
        bytes += n;
      }
    }
  } finally {
    closeSync(fd);
    await img.close();
  }
  return bytes;
}

/** The guest writes on (into the .avhdx) while the test reads the frozen parent. */
async function guestWritesOn(): Promise<void> {
  await waitForGuest(vmDir, (await guestCounter(vmDir)) + 5);
}

/** qemu-img compare: the restore file equals the view's frozen disk 0 (throws, naming both, when not). */
function compareWithView(view: PointInTimeView): void {
  const src = view.disks[0]!.source;
  if (src.kind !== 'file') throw new Error('expected a file source');
  run(qemuImg, ['compare', '-U', '-f', 'raw', '-F', 'vhdx', restored, src.path]);
}

/** An incremental step: changes since `since` must be usable; apply them, compare, commit; the next reference. */
async function incremental(t: Tap, view: PointInTimeView, since: ChangeReference | null, what: string): Promise<ChangeReference | null> {
  const answer = await view.changes(0, since);
  t.equal(answer.usable, true, `${what}: changes usable ${answer.usable ? '' : answer.reason}`);
  if (answer.usable) await applyView(view, answer.extents);
  compareWithView(view);
  t.pass(`${what}: qemu-img compare: the restore equals the frozen disk`);
  await view.commit();
  return view.disks[0]!.nextReference;
}

let lastRef: ChangeReference | null = null;

t.test('inventory: the simulation names itself; the VM, its disk, RCT, online possible', async (t) => {
  t.same(driver.hypervisor, { name: 'hyper-v', version: 'hyperv-sim (simulation)' });
  const vm = (await driver.listVms()).find((v) => v.id === vmId)!;
  t.match(vm, { name: 'writer', state: 'running', guestAgent: { present: true, answering: true } });
  t.match(vm.disks, [{ key: 'scsi0-0', format: 'vhdx', virtualSize: 64 << 20, snapshottable: true, tracking: { state: 'none', persistent: true } }]);
  t.same(await driver.checkOnline(vmId), { possible: true, unmet: [] });
});

t.test('online view: a recovery checkpoint; the frozen parent is one point in time; the .avhdx is a real VHDX', async (t) => {
  const view = await driver.createView(vmId, { mode: 'auto' });
  try {
    t.equal(view.consistency, 'application');
    t.ok(Number.isFinite(view.freezeMs), `freezeMs ${view.freezeMs}`);
    const check = await checkFileView(view.disks[0]!.source, guestWritesOn);
    t.same(check.problems, [], `header ${check.header}`);
    const avhdx = readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx'));
    t.equal(avhdx.length, 1, 'the checkpoint made one .avhdx child');
    // QEMU does not open differencing VHDX ("Operation not supported"): the project's reader checks the child.
    const child = await openDisk(join(vmDir, 'Virtual Hard Disks', avhdx[0]!));
    t.match(child.info, { format: 'vhdx', variant: 'differencing', parent: { path: view.disks[0]!.source.kind === 'file' ? view.disks[0]!.source.path : '' } });
    await child.close();
    await applyView(view, null);
    t.same(checkWriterImage(restored).problems, [], 'the full copy keeps the rule');
    compareWithView(view);
    t.pass('qemu-img compare: the copy equals the frozen parent');
    t.equal(await view.changes(0, null).then((a) => a.usable), false);
    await view.commit();
    lastRef = view.disks[0]!.nextReference;
  } finally {
    await view.release();
  }
  t.same(readdirSync(join(vmDir, 'Virtual Hard Disks')).filter((f) => f.endsWith('.avhdx')), [], 'merged: no .avhdx left');
  const base = (await host.listVms())[0]!.disks[0]!.basePath;
  t.match(run(qemuImg, ['check', '-U', '-f', 'vhdx', base]), /No errors/u, 'qemu-img check: the base VHDX after the merge');
  const vm = (await driver.listVms()).find((v) => v.id === vmId)!;
  t.equal(vm.disks[0]!.tracking.state, 'recording');
});

t.test('incremental series via RCT, offline and online: the restore equals each point (qemu-img compare)', async (t) => {
  for (const mode of ['offline', 'auto', 'offline'] as const) {
    await guestWritesOn();
    const view = await driver.createView(vmId, { mode });
    try {
      t.equal(view.consistency, mode === 'offline' ? 'offline' : 'application');
      if (mode === 'offline') t.ok(view.pauseMs !== undefined && view.pauseMs >= 0, `pauseMs ${view.pauseMs}`);
      const answer = await view.changes(0, lastRef);
      if (!answer.usable) throw new Error(`changes not usable: ${answer.reason}`);
      const bytes = await applyView(view, answer.extents);
      t.ok(bytes > 0 && bytes <= 2 * 64 * 1024 * 2, `${mode}: ${answer.extents.length} changed extents, ${bytes} bytes (header + ring sectors)`);
      t.same(checkWriterImage(restored).problems, [], `${mode}: the restored image keeps the rule`);
      compareWithView(view);
      t.pass(`${mode}: qemu-img compare: full + changes = the frozen disk`);
      await view.commit();
      lastRef = view.disks[0]!.nextReference;
    } finally {
      await view.release();
    }
    t.equal((await driver.listVms()).find((v) => v.id === vmId)!.state, 'running', 'the VM runs after the view');
  }
  t.equal((await host.listReferencePoints(vmId)).length, 1, 'one reference point: the older ones were destroyed at commit');
});

t.test('GetVirtualDiskChanges answers short (ProcessedByteLength): changes() asks again until the whole disk is covered', async (t) => {
  // 40 separate 64 KiB ranges reported changed (RCT may over-report; never under-report): more than the
  // SIM_MAX_RANGES one simulated call returns.
  const base = (await host.listVms()).find((v) => v.id === vmId)!.disks[0]!.basePath;
  for (let i = 0; i < 40; i++) appendWrite(base, (8 << 20) + i * (512 << 10), 64 << 10);
  let calls = 0;
  const counting = new Proxy(host, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'getVirtualDiskChanges') return async (...a: Parameters<typeof host.getVirtualDiskChanges>) => { calls++; return host.getVirtualDiskChanges(...a); };
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
    },
  });
  const looping = new HyperVDriver({ host: counting, stateDir: join(dir, 'state-looping') });
  const view = await looping.createView(vmId, { mode: 'auto' });
  try {
    const answer = await view.changes(0, lastRef);
    if (!answer.usable) throw new Error(answer.reason);
    t.ok(answer.extents.length >= 40, `${answer.extents.length} extents`);
    t.ok(calls >= Math.ceil(40 / SIM_MAX_RANGES), `${calls} GetVirtualDiskChanges calls (at most ${SIM_MAX_RANGES} ranges each)`);
    lastRef = await incremental(t, view, lastRef, 'after the looped change query');
  } finally {
    await view.release();
  }
});

t.test('requirements unmet: auto goes offline with the reasons; online is refused', async (t) => {
  await host.setBackupService(vmId, { responding: false, guestProblems: ['volume E: is FAT32, not NTFS'] });
  try {
    const check = await driver.checkOnline(vmId);
    t.same(check.unmet.map((u) => u.requirement).sort(), ['guest-agent', 'guest-freeze']);
    const err = await driver.createView(vmId, { mode: 'online' }).then(async (v) => v.release(), (e: unknown) => e);
    t.ok(hasCode(err, 'SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE'), String(err));
    const view = await driver.createView(vmId, { mode: 'auto' });
    try {
      t.equal(view.consistency, 'offline');
      t.ok(view.reasons.some((r) => /NTFS/u.test(r)), view.reasons.join('; '));
      t.same((await checkFileView(view.disks[0]!.source, guestWritesOn)).problems, []);
      await view.abort();
    } finally {
      await view.release();
    }
  } finally {
    await host.setBackupService(vmId, { responding: true, guestProblems: [] });
  }
});

t.test('kill -9 of the driver process between checkpoint and commit', async (t) => {
  for (const mode of ['auto', 'offline'] as const) {
    const { checkpoint } = await killChildAt(mode) as { checkpoint: string };
    const c0 = await guestCounter(vmDir);
    await waitForGuest(vmDir, c0 + 5, 20_000);
    t.equal((await guestCall(vmDir, 'status')).paused, null, `${mode}: the guest is neither frozen nor paused after the kill`);
    t.ok((await host.listCheckpoints(vmId)).some((c) => c.name === checkpoint), `${mode}: checkpoint ${checkpoint} left behind`);
    const report = await driver.cleanupLeftovers();
    t.same(report.errors, []);
    t.ok(report.removed.some((r) => r.includes(checkpoint)), `cleaned: ${report.removed.join('; ')}`);
    t.same(await host.listCheckpoints(vmId), []);
  }
  const view = await driver.createView(vmId, { mode: 'auto' });
  try {
    lastRef = await incremental(t, view, lastRef, 'after the killed runs, from the last committed reference');
  } finally {
    await view.release();
  }
});

/** Start the driver child in `mode`, wait for its line, kill -9 it; its line. */
async function killChildAt(mode: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../helpers/hyperv-sim-child.js', import.meta.url)), host.root, stateDir, vmId, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`driver child exited ${c}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return JSON.parse(line) as Record<string, unknown>;
}

t.test('kill -9 of the driver process with the VM saved, and after ConvertToReferencePoint', async (t) => {
  await killChildAt('saved');
  t.equal((await host.listVms()).find((v) => v.id === vmId)!.state, 'Saved', 'killed between save and resume: the VM is left saved');
  const report = await driver.cleanupLeftovers();
  t.same(report.errors, []);
  t.ok(report.removed.some((r) => /resumed VM writer/u.test(r)), report.removed.join('; '));
  await waitForGuest(vmDir, (await guestCounter(vmDir)) + 5, 20_000);
  t.equal((await guestCall(vmDir, 'status')).paused, null, 'resumed by the next start\'s cleanup: the guest writes on');

  // The appliance had committed the point (the driver converts only then); killed before the older
  // reference point was destroyed.
  const { checkpoint } = await killChildAt('converted') as { checkpoint: string };
  t.same((await host.listReferencePoints(vmId)).map((r) => r.name).sort(), [lastRef!.id, checkpoint].sort(), 'two reference points');
  const after = await driver.cleanupLeftovers();
  t.same(after.errors, []);
  t.same((await host.listReferencePoints(vmId)).map((r) => r.name), [checkpoint], 'the converted one is kept, the older destroyed');
  const view = await driver.createView(vmId, { mode: 'auto' });
  try {
    const answer = await view.changes(0, { ...lastRef!, id: checkpoint });
    t.equal(answer.usable, true, 'the next point is incremental from the killed run\'s reference point');
    await applyView(view, null); // the test's restore copy never had the killed run's point: a full copy
    compareWithView(view);
    t.same(checkWriterImage(restored).problems, []);
    await view.commit();
    lastRef = view.disks[0]!.nextReference;
  } finally {
    await view.release();
  }
});

t.test('a failed merge: commit and abort fail, the checkpoint is cleaned later, nothing is lost', async (t) => {
  await host.failNextMerges(vmId, 2);
  const view = await driver.createView(vmId, { mode: 'auto' });
  const failed = view.disks[0]!.nextReference;
  const commitErr = await view.commit().then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(commitErr, 'SV_ERR_HYPERV_JOB_FAILED'), String(commitErr));
  const releaseErr = await view.release().then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(releaseErr, 'SV_ERR_HYPERV_JOB_FAILED'), `the abort's merge fails too: ${String(releaseErr)}`);
  t.equal((await host.listCheckpoints(vmId)).length, 1, 'the checkpoint stays');
  const report = await driver.cleanupLeftovers();
  t.same(report.errors, []);
  t.equal(report.removed.length, 1, report.removed.join('; '));
  const next = await driver.createView(vmId, { mode: 'auto' });
  try {
    t.match(await next.changes(0, failed), { usable: false }, 'the failed point\'s reference is not usable');
    lastRef = await incremental(t, next, lastRef, 'every change since the last committed point');
  } finally {
    await next.release();
  }
});

t.test('leftovers of earlier runs: two reference points, merging disabled, a VM left saved', async (t) => {
  // A run killed between ConvertToReferencePoint and DestroyReferencePoint (its point committed on the appliance):
  // what its commit had recorded before converting, then the conversion itself.
  const cp = await host.createRecoveryCheckpoint(vmId, { name: 'sv-1eft0ver', consistencyLevel: 'CrashConsistent', ignoreNonSnapshottableDisks: false });
  await new HyperVStateFile(stateDir).update((s) => void (s.converting[vmId] = 'sv-1eft0ver'));
  await host.convertToReferencePoint(cp.id);
  t.equal((await host.listReferencePoints(vmId)).length, 2);
  const disk = (await driver.listVms()).find((v) => v.id === vmId)!.disks[0]!;
  lastRef = { id: 'sv-1eft0ver', diskIdentity: disk.identity, virtualSize: disk.virtualSize };
  await host.setMergeEnabled(vmId, false);
  await new HyperVStateFile(stateDir).update((s) => void (s.saved[vmId] = 'deadbeef'));
  await host.saveVm(vmId);
  const report = await driver.cleanupLeftovers();
  t.same(report.errors, []);
  t.ok(report.removed.some((r) => /resumed VM writer/u.test(r)), report.removed.join('; '));
  t.ok(report.removed.some((r) => /re-enabled checkpoint merging/u.test(r)));
  t.ok(report.removed.some((r) => /reference point sv-[0-9a-f]{8} .*older than sv-1eft0ver/u.test(r)));
  t.same((await host.listReferencePoints(vmId)).map((r) => r.name), ['sv-1eft0ver'], 'the newest reference point is kept');
  t.match(new HyperVStateFile(stateDir).read(), { latest: { [vmId]: 'sv-1eft0ver' }, converting: {} }, 'and recorded as the latest');
  t.equal((await driver.listVms()).find((v) => v.id === vmId)!.state, 'running');
  await waitForGuest(vmDir, (await guestCounter(vmDir)) + 5, 20_000);
  t.same((await driver.cleanupLeftovers()).removed, [], 'a second cleanup finds nothing');
});

t.test('RCT ids that no longer match: digest fallback with the reason, then the series continues', async (t) => {
  // Between two runs the disk's change tracking is reset (e.g. its .rct lost in a copy of the disk).
  rmSync(rctLogPath((await host.listVms()).find((v) => v.id === vmId)!.disks[0]!.basePath));
  const view = await driver.createView(vmId, { mode: 'auto' });
  try {
    const ref = lastRef;
    const answer = await view.changes(0, ref);
    t.match(answer, { usable: false, reason: /no longer matches the disk's change tracking/u });
    await applyView(view, null); // digest comparison = a full read at the source
    await view.commit();
    lastRef = view.disks[0]!.nextReference;
  } finally {
    await view.release();
  }
  const next = await driver.createView(vmId, { mode: 'auto' });
  try {
    lastRef = await incremental(t, next, lastRef, 'a new reference after the reset');
  } finally {
    await next.release();
  }
  t.same((await driver.cleanupLeftovers()).removed, []);
});

t.test('configuration version 5.0 (no RCT), VM off: digest fallback per disk with the reason; no pause', async (t) => {
  const oldId = await host.createVm({ name: 'legacy', disks: [8 << 20], configurationVersion: '5.0' });
  const vm = (await driver.listVms()).find((v) => v.id === oldId)!;
  t.match(vm, { state: 'stopped', disks: [{ tracking: { state: 'unsupported', reason: /6\.2/u } }] });
  const view = await driver.createView(oldId, { mode: 'auto' });
  try {
    t.equal(view.consistency, 'offline');
    t.equal(view.pauseMs, 0);
    t.equal(view.disks[0]!.nextReference, null);
    t.ok(view.reasons.some((r) => /6\.2/u.test(r)), view.reasons.join('; '));
    t.match(await view.changes(0, { id: 'sv-00000000', diskIdentity: view.disks[0]!.identity, virtualSize: 8 << 20 }), { usable: false, reason: /6\.2/u });
    await view.commit();
  } finally {
    await view.release();
  }
  t.ok(existsSync(vm.disks[0]!.path));
});

t.test('the configuration with a point: exported from the view, then a whole VM restored as files and imported', async (t) => {
  const view = await driver.createView(vmId, { mode: 'auto' });
  const files = await (view as unknown as { exportConfiguration(d: string): Promise<string[]> }).exportConfiguration(join(dir, 'point-config'));
  t.equal(files.length, 1, files.join(', '));
  const restoreDir = join(dir, 'restored-vm');
  mkdirSync(restoreDir);
  await applyView(view, null);
  await view.commit();
  lastRef = view.disks[0]!.nextReference;
  await view.release();
  const config = JSON.parse(readFileSync(files[0]!, 'utf8')) as { simulation: string; disks: Array<{ file: string }> };
  t.match(config.simulation, /not a Hyper-V \.vmcx/u, 'the simulated configuration says what it is');
  run(qemuImg, ['convert', '-f', 'raw', '-O', 'vhdx', restored, join(restoreDir, config.disks[0]!.file)]);
  const newId = await host.importVm(files[0]!, restoreDir);
  const imported = (await driver.listVms()).find((v) => v.id === newId)!;
  t.match(imported, { name: 'writer', state: 'stopped', disks: [{ key: 'scsi0-0', virtualSize: 64 << 20 }] });
  t.same(checkWriterImage(restored).problems, []);
});

t.test('storage migration: the disk and its change tracking move together, the series continues', async (t) => {
  const before = (await driver.listVms()).find((v) => v.id === vmId)!.disks[0]!;
  await host.moveStorage(vmId, join(dir, 'moved-storage'));
  const after = (await driver.listVms()).find((v) => v.id === vmId)!.disks[0]!;
  t.not(after.path, before.path, `moved to ${after.path}`);
  t.equal(after.identity, before.identity, 'same disk identity');
  await guestWritesOn();
  const view = await driver.createView(vmId, { mode: 'auto' });
  try {
    lastRef = await incremental(t, view, lastRef, 'after the storage migration');
  } finally {
    await view.release();
  }
});

t.test('a clustered VM: its owner node backs it up; after a live migration the new owner continues the RCT series', async (t) => {
  // Two nodes of one simulated cluster: two drivers (own state, own node name) over the same shared storage.
  const nodeA = new HyperVDriver({ host, stateDir: join(dir, 'node-a'), nodeName: 'HV-NODE-A' });
  const nodeB = new HyperVDriver({ host, stateDir: join(dir, 'node-b'), nodeName: 'hv-node-b.cluster.example' });
  t.teardown(async () => {
    await nodeA.close();
    await nodeB.close();
    await host.setCluster(vmId, null);
  });
  await host.setCluster(vmId, { ownerNode: 'hv-node-a', groupState: 'Online' });
  const place = async (): Promise<string> => {
    const sightings = [];
    for (const [name, d] of [['node-a', nodeA], ['node-b', nodeB]] as const) {
      const vm = (await d.listVms()).find((v) => v.id === vmId)!;
      sightings.push({ hostId: name, host: name, cluster: 'c1', state: vm.state, ...(vm.migration ? { migration: vm.migration } : {}) });
    }
    return placeVm(vmId, sightings).at.host;
  };
  t.equal(await place(), 'node-a', 'placement: the owner node');
  t.match((await nodeB.listVms()).find((v) => v.id === vmId), { migration: 'completed' }, 'node B: the VM role runs elsewhere');
  await t.rejects(nodeB.createView(vmId, { mode: 'auto' }), { code: 'SV_ERR_AGENT_VM_NOT_HOSTED', message: /owned by node hv-node-a/u });

  await guestWritesOn();
  const onA = await nodeA.createView(vmId, { mode: 'auto' });
  try {
    const report = await nodeB.cleanupLeftovers();
    t.same(report.removed, [], 'node B never cleans the owner\'s open checkpoint');
    t.equal((await host.listCheckpoints(vmId)).length, 1);
    lastRef = await incremental(t, onA, lastRef, 'node A (owner), from the last reference');
  } finally {
    await onA.release();
  }

  await host.liveMigrate(vmId, 'HV-NODE-B', async () => {
    await t.rejects(place(), { code: 'SV_ERR_AGENT_VM_MIGRATING' }, 'during the live migration: retry later');
    await t.rejects(nodeA.createView(vmId, { mode: 'auto' }), { code: 'SV_ERR_HYPERVISOR_VIEW_FAILED', message: /migrating/u }, 'no checkpoint while migrating');
  });
  t.equal(await place(), 'node-b', 'placement: the new owner');
  await t.rejects(nodeA.createView(vmId, { mode: 'auto' }), { code: 'SV_ERR_AGENT_VM_NOT_HOSTED' });
  await guestWritesOn();
  const onB = await nodeB.createView(vmId, { mode: 'auto' });
  try {
    const answer = await onB.changes(0, lastRef);
    t.ok(answer.usable && answer.extents.reduce((n, [, l]) => n + l, 0) < (8 << 20), 'RCT on the shared storage: only changed extents since node A\'s point');
    t.same((await checkFileView(onB.disks[0]!.source, guestWritesOn)).problems, [], 'node B\'s view is one point in time');
    lastRef = await incremental(t, onB, lastRef, 'node B after the live migration');
  } finally {
    await onB.release();
  }
  t.same(checkWriterImage(restored).problems, [], 'the restore after the migration keeps the rule');
  t.equal((await host.listReferencePoints(vmId)).length, 1, 'node B\'s commit destroyed node A\'s reference point');
});

await driverContract(t, () => ({ driver, vmId }));
