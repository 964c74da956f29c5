/**
 * Change tracking of the QEMU driver with dirty bitmaps, on writer guests (they boot at once, so VMs are
 * restarted freely): after a committed view, known blocks written on the disk node (HMP qemu-io) are in
 * the next changes(); after abort they are still there (merged back); a qcow2 disk keeps its bitmap over a
 * clean restart; kill -9 of QEMU leaves it inconsistent (not trusted); a raw disk loses it on restart. A
 * VM whose QEMU is gone is listed stopped/crashed and viewed through qemu-nbd; QEMU killed under an open
 * view gives coded errors and the VM is reported down. A raw disk's view is read directly from the disk
 * file where the guest has not written since the point in time, through NBD where it has.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasCode } from '../../src/errors/index.js';
import type { ChangeReference, HypervisorDriver, PointInTimeView } from '../../src/hypervisor/driver.js';
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import type { QmpClient } from '../../src/qemu/qmp.js';
import { hash } from '../../src/native/index.js';
import { openDiskSource } from '../../src/sources/registry.js';
import { COMPRESSION_LEVEL } from '../../storage/layout.js';
import { closePool } from '../../src/pool/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { openNbd, startDriverVm, type DriverVm } from '../helpers/driver-vm.js';
import { makeWriterDisk } from '../helpers/writer-guest.js';

const dir = tempDir(t, 'sv-hv-track-');
const MiB = 1 << 20;
const G = 64 * 1024;
/** Where the writer guest itself writes (boot sector + header cluster, ring clusters). */
const WRITER_AREAS: Array<[number, number]> = [[0, G], [MiB, 2 * G]];

const qcow2 = makeWriterDisk(join(dir, 'q.qcow2'), 'qcow2');
const raw = makeWriterDisk(join(dir, 'r.raw'), 'raw');
const Q_ID = '11111111-1111-4111-8111-111111111111';
const R_ID = '22222222-2222-4222-8222-222222222222';
const start = (name: string, path: string, format: 'raw' | 'qcow2', uuid: string): Promise<DriverVm> =>
  startDriverVm(t, { dir, name, uuid, disks: [{ path, format }] });

let q = await start('q', qcow2, 'qcow2', Q_ID);
let r = await start('r', raw, 'raw', R_ID);
const driver = new QemuDriver({ qmp: [join(dir, '*.drv.qmp')], stateDir: join(dir, 'state') });
t.teardown(() => driver.close());
t.teardown(closePool);

async function write(qmp: QmpClient, offset: number, length: number, pattern = 0xab): Promise<void> {
  // Through the device's own BlockBackend (-d), as a guest write would go: the disk node is not shareable.
  const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -P ${pattern} ${offset} ${length}"` });
  if (out.trim() !== '') throw new Error(`qemu-io: ${out}`);
}

/** Every written range is inside the extents, and every extent lies in a written range or a writer area. */
function checkExtents(t: Test, extents: ReadonlyArray<readonly [number, number]>, written: Array<[number, number]>): void {
  const inside = (o: number, l: number, areas: Array<[number, number]>): boolean =>
    areas.some(([ao, al]) => o >= Math.floor(ao / G) * G && o + l <= Math.ceil((ao + al) / G) * G);
  for (const [o, l] of written) {
    const covered = extents.some(([eo, el]) => eo <= o && eo + el >= o + l);
    t.ok(covered, `written ${o}+${l} is in the changed extents`);
  }
  // Split extents at cluster boundaries so that a merged run of writer area + written block still checks.
  const clusters: Array<[number, number]> = extents.flatMap(([eo, el]) => Array.from({ length: Math.ceil(el / G) }, (_, i): [number, number] => [eo + i * G, Math.min(G, eo + el - (eo + i * G))]));
  const stray = clusters.filter(([o, l]) => !inside(o, l, [...written, ...WRITER_AREAS]));
  t.same(stray, [], 'nothing else is reported changed (beyond what the guest itself writes)');
}

async function kill9(d: DriverVm): Promise<void> {
  const p = d.vm.process;
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((resolve) => p.once('exit', resolve));
  p.kill('SIGKILL');
  await exited;
}

async function view(d: HypervisorDriver, vmId: string): Promise<PointInTimeView> {
  return d.createView(vmId, { mode: 'auto', blockSize: G });
}

let refQ: ChangeReference;

t.test('commit, then known writes are the next changes', async (t) => {
  const v1 = await view(driver, Q_ID);
  t.equal(v1.disks[0]!.nextReference?.id.startsWith('sv-track-'), true);
  await v1.commit();
  await v1.release();
  refQ = v1.disks[0]!.nextReference!;
  const listed = (await driver.listVms()).find((v) => v.id === Q_ID)!;
  t.match(listed.disks[0]!.tracking, { state: 'recording', persistent: true });
  const written: Array<[number, number]> = [[8 * MiB, G], [20 * MiB + 3 * G, 2 * G], [40 * MiB, 4096]];
  for (const [o, l] of written) await write(q.vm.qmp, o, l);
  const v2 = await view(driver, Q_ID);
  try {
    const answer = await v2.changes(0, refQ);
    t.equal(answer.usable, true);
    if (answer.usable) checkExtents(t, answer.extents, written);
    await v2.commit();
    refQ = v2.disks[0]!.nextReference!;
  } finally {
    await v2.release();
  }
});

t.test('abort merges the frozen bitmap back: the next view still has those changes', async (t) => {
  const a: Array<[number, number]> = [[30 * MiB, G]];
  for (const [o, l] of a) await write(q.vm.qmp, o, l);
  const v = await view(driver, Q_ID);
  t.match(await v.changes(0, refQ), { usable: true });
  await v.abort();
  await v.release();
  const b: Array<[number, number]> = [[50 * MiB, G]];
  for (const [o, l] of b) await write(q.vm.qmp, o, l);
  const v2 = await view(driver, Q_ID);
  try {
    const answer = await v2.changes(0, refQ);
    t.equal(answer.usable, true, 'the last committed reference still works');
    if (answer.usable) checkExtents(t, answer.extents, [...a, ...b]);
    await v2.commit();
    refQ = v2.disks[0]!.nextReference!;
  } finally {
    await v2.release();
  }
});

t.test('qcow2, clean restart: the persistent bitmap is used', async (t) => {
  await q.vm.shutdown();
  q = await start('q', qcow2, 'qcow2', Q_ID);
  await write(q.vm.qmp, 12 * MiB, G);
  const listed = (await driver.listVms()).find((v) => v.id === Q_ID)!;
  t.match(listed.disks[0]!.tracking, { state: 'recording', persistent: true });
  const v = await view(driver, Q_ID);
  try {
    const answer = await v.changes(0, refQ);
    t.equal(answer.usable, true, JSON.stringify(answer).slice(0, 200));
    if (answer.usable) checkExtents(t, answer.extents, [[12 * MiB, G]]);
    await v.commit();
    refQ = v.disks[0]!.nextReference!;
  } finally {
    await v.release();
  }
});

t.test('QEMU stopped cleanly: listed stopped, viewed from its files through qemu-nbd', async (t) => {
  await q.vm.shutdown();
  const listed = (await driver.listVms()).find((v) => v.id === Q_ID);
  t.match(listed, { state: 'stopped', disks: [{ format: 'qcow2', path: qcow2 }] });
  t.match(await driver.checkOnline(Q_ID), { possible: false, unmet: [{ requirement: 'vm-running' }] });
  const v = await view(driver, Q_ID);
  try {
    t.match(v, { consistency: 'offline', pauseMs: 0 });
    const src = v.disks[0]!.source;
    t.equal(src.kind, 'nbd');
    const client = await openNbd(src);
    const served = await client.read(0, 2 * MiB);
    await client.close();
    const copy = join(dir, 'stopped.raw');
    run(requireTool('qemu-img'), ['convert', '-U', '-f', 'qcow2', '-O', 'raw', qcow2, copy]);
    t.ok(served.equals(readFileSync(copy).subarray(0, 2 * MiB)), 'the view serves the file\'s content (first 2 MiB: boot sector, header, ring)');
    t.match(await v.changes(0, refQ), { usable: false, reason: /not running/ });
    t.equal(v.disks[0]!.nextReference, null);
  } finally {
    await v.release();
  }
  q = await start('q', qcow2, 'qcow2', Q_ID);
});

t.test('qcow2, kill -9 of QEMU: the bitmap is inconsistent and not trusted', async (t) => {
  // A persistent bitmap reaches the image when QEMU closes it: commit a view, quit cleanly, start again
  // (QEMU now marks the stored bitmap in use), then kill.
  const v0 = await view(driver, Q_ID);
  await v0.commit();
  await v0.release();
  refQ = v0.disks[0]!.nextReference!;
  await q.vm.shutdown();
  q = await start('q', qcow2, 'qcow2', Q_ID);
  await driver.listVms(); // the driver watches the new QEMU's connection
  await kill9(q);
  const down = (await driver.listVms()).find((v) => v.id === Q_ID);
  t.equal(down?.state, 'crashed', 'a VM whose QMP connection ended without SHUTDOWN is reported crashed');
  q = await start('q', qcow2, 'qcow2', Q_ID);
  const listed = (await driver.listVms()).find((v) => v.id === Q_ID)!;
  t.match(listed.disks[0]!.tracking, { state: 'inconsistent', reason: /inconsistent/ });
  const v = await view(driver, Q_ID);
  try {
    t.same(await v.changes(0, refQ), { usable: false, reason: 'bitmap inconsistent (unclean shutdown)' });
    await v.commit();
    refQ = v.disks[0]!.nextReference!;
  } finally {
    await v.release();
  }
  const listedAfter = (await driver.listVms()).find((v) => v.id === Q_ID)!;
  t.match(listedAfter.disks[0]!.tracking, { state: 'recording' }, 'a fresh bitmap records again');
});

t.test('raw disk: big ranges and batches of spans are read from the file directly unless the guest wrote them after the point', async (t) => {
  await write(r.vm.qmp, 20 * MiB, 2 * MiB, 0x11);
  await write(r.vm.qmp, 30 * MiB, 2 * MiB, 0x22);
  const v = await view(driver, R_ID);
  const src = await openDiskSource(v.disks[0]!.source);
  try {
    t.match(v.disks[0]!.source, { kind: 'nbd', direct: { path: raw, cowExport: /^sv-[0-9a-f]{8}-cow0$/ } }, 'a raw disk\'s view offers direct reads');
    await write(r.vm.qmp, 20 * MiB + 512 * 1024, 64 * 1024, 0xcd); // the guest, after the point in time
    const digestsOf = (fill: number): string => {
      const block = Buffer.alloc(G, fill);
      return Buffer.concat(Array.from({ length: (2 * MiB) / G }, () => hash(block))).toString('hex');
    };
    const stats = (src as unknown as { directStats: { ranges: number; reread: number } }).directStats;
    const range = (offset: number) => ({ offset, length: 2 * MiB, blockSize: G, level: COMPRESSION_LEVEL, oldDigests: null });
    let before = src.bytesTransferred;
    const untouched = await src.backupRange(range(30 * MiB));
    t.equal(Buffer.from(untouched.digests).toString('hex'), digestsOf(0x22), 'an untouched range: the point in time\'s bytes');
    t.same(stats, { ranges: 1, reread: 0 }, 'read from the disk file');
    t.equal(src.bytesTransferred - before, 4096, 'only the 4 KiB probe crossed NBD');
    before = src.bytesTransferred;
    const written = await src.backupRange(range(20 * MiB));
    t.equal(Buffer.from(written.digests).toString('hex'), digestsOf(0x11), 'a range the guest wrote after the point: the point in time\'s bytes, not the new ones');
    t.same(stats, { ranges: 1, reread: 1 }, 'the copy-before-write had saved part of it: re-read through NBD');
    t.equal(src.bytesTransferred - before, 2 * MiB, 'the whole range crossed NBD');
    // Small spans (view.spans): all read from the file, checked in one walk; only the written one re-read.
    const span = (offset: number) => ({ offset, length: G, blockSize: G, level: COMPRESSION_LEVEL, oldDigests: null });
    const at = [30 * MiB, 20 * MiB + 512 * 1024, 31 * MiB + 3 * G, 21 * MiB + G];
    before = src.bytesTransferred;
    const spans = await src.backupSpans!(at.map(span));
    const fills = [0x22, 0x11, 0x22, 0x11];
    t.same(spans.map((x) => Buffer.from(x.digests).toString('hex')), fills.map((f) => hash(Buffer.alloc(G, f)).toString('hex')), 'every span has the point in time\'s bytes, the one written after it too');
    t.same(stats, { ranges: 4, reread: 2 }, 'three spans from the file, the written one re-read through NBD');
    t.equal(src.bytesTransferred - before, 4096 + G, 'one probe and the written span crossed NBD');
  } finally {
    await src.close();
    await v.release();
  }
  const left = await r.vm.qmp.execute<Array<{ id: string }>>('query-block-exports');
  t.same(left.filter((e) => e.id.startsWith('sv-')), [], 'no export left after release');
});

t.test('raw disk, QEMU restarted: the in-memory bitmap is gone', async (t) => {
  const v1 = await view(driver, R_ID);
  await v1.commit();
  await v1.release();
  const ref = v1.disks[0]!.nextReference!;
  const listed = (await driver.listVms()).find((v) => v.id === R_ID)!;
  t.match(listed.disks[0]!.tracking, { state: 'recording', persistent: false });
  await r.vm.shutdown();
  r = await start('r', raw, 'raw', R_ID);
  const v2 = await view(driver, R_ID);
  try {
    t.same(await v2.changes(0, ref), { usable: false, reason: 'bitmap missing (QEMU restarted with a raw disk?)' });
  } finally {
    await v2.release();
  }
});

t.test('QEMU killed under an open view: coded errors, VM reported down, release still completes', async (t) => {
  const v = await view(driver, R_ID);
  await kill9(r);
  const err = await v.changes(0, { id: 'sv-track-00000000', diskIdentity: v.disks[0]!.identity, virtualSize: v.disks[0]!.virtualSize }).then(() => null, (e: unknown) => e);
  t.equal(err, null, 'a reference that is not the frozen bitmap is refused without asking QEMU');
  const commitErr = await v.commit().then(() => null, (e: unknown) => e);
  t.ok(hasCode(commitErr, 'SV_ERR_HYPERVISOR_VM_GONE'), `commit: ${String(commitErr)}`);
  await v.release();
  const listed = (await driver.listVms()).find((x) => x.id === R_ID);
  t.equal(listed?.state, 'crashed');
  const viewErr = await driver.createView(R_ID, { mode: 'online' }).then(() => null, (e: unknown) => e);
  t.ok(hasCode(viewErr, 'SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE'), String(viewErr));
});

t.test('QEMU killed during createView: a coded error, nothing left paused', async (t) => {
  r = await start('r', raw, 'raw', R_ID);
  await driver.listVms();
  for (const delay of [0, 5, 15, 30]) {
    const pending = driver.createView(R_ID, { mode: 'auto' }).then(async (v) => {
      await v.release();
      return 'created before the kill';
    }, (e: unknown) => e);
    await new Promise((res) => setTimeout(res, delay));
    await kill9(r);
    const outcome = await pending;
    t.ok(outcome === 'created before the kill' || hasCode(outcome, 'SV_ERR_HYPERVISOR_VM_GONE', 'SV_ERR_HYPERVISOR_VIEW_FAILED', 'SV_ERR_HYPERVISOR_VM_NOT_FOUND'), `kill after ${delay} ms: ${String((outcome as Error).message ?? outcome)}`);
    r = await start('r', raw, 'raw', R_ID);
    const status = await r.vm.qmp.execute<{ status: string }>('query-status');
    t.equal(status.status, 'running');
  }
  const report = await driver.cleanupLeftovers();
  t.same(report.errors, []);
  t.ok(hasCode(await driver.createView('nope', { mode: 'auto' }).catch((e: unknown) => e), 'SV_ERR_HYPERVISOR_VM_NOT_FOUND'));
});
