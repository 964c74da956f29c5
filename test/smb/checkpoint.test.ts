/**
 * Checkpoint views (src/hypervisor/qemu/checkpoint.ts) of a writer VM whose disk lies in a share's folder,
 * one boot: the base file is one point in time while the guest writes into the overlay, the overlay is
 * merged back on release (no node, no file, the device back on its disk), the guest's writes of the overlay
 * period reach the disk and its tracking bitmap; then kill -9 rounds: of the driver process at random
 * moments (its successor completes or rolls back the merge), and of QEMU with a checkpoint open (the
 * overlay is merged offline with qemu-img before the VM starts again). Never a chain left behind.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import type { QmpClient } from '../../src/qemu/qmp.js';
import { queryBlock, queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import { REPO_ROOT, childEnv, tempDir } from '../helpers/env.js';
import { startDriverVm, type DriverVm } from '../helpers/driver-vm.js';
import { rounds } from '../helpers/soak.js';
import { checkWriterImage, checkWriterReads, makeWriterDisk, readHeader, waitForHeader } from '../helpers/writer-guest.js';
import { readFile } from 'node:fs/promises';

const dir = tempDir(t, 'sv-smb-ckpt-');
const share = join(dir, 'share');
const folder = join(share, 'vms');
mkdirSync(folder, { recursive: true });
const disk = makeWriterDisk(join(folder, 'w1.raw'), 'raw');
const vmId = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const stateDir = join(dir, 'state');
const glob = join(dir, '*.drv.qmp');
let current: DriverVm = await startDriverVm(t, { dir, name: 'w1', disks: [{ path: disk, format: 'raw' }] });
await waitForHeader(disk, 300, 'raw', 240_000);
const newDriver = (): QemuDriver => new QemuDriver({ qmp: [glob], stateDir, checkpointIn: [share] });
const overlays = (): string[] => readdirSync(folder).filter((f) => f.startsWith('sv-'));

async function checkClean(t: Test, qmp: QmpClient, what: string): Promise<void> {
  t.same(overlays(), [], `${what}: no overlay file in the share's folder`);
  t.same((await queryNamedBlockNodes(qmp)).map((n) => n['node-name']).filter((n) => n.startsWith('sv-')), [], `${what}: no node of ours`);
  t.same((await queryBlockExports(qmp)).map((e) => e.id), [], `${what}: no export`);
  const root = (await queryBlock(qmp)).find((b) => b.qdev)?.inserted;
  t.equal(root?.file, disk, `${what}: the device is on its disk again`);
  t.equal((await queryStatus(qmp)).status, 'running', `${what}: the VM runs`);
  const jobs = await qmp.execute<unknown[]>('query-jobs');
  t.same(jobs, [], `${what}: no job left`);
}

t.test('a checkpoint view: the base file is one point in time, then merged back', async (t) => {
  const driver = newDriver();
  t.teardown(() => driver.close());
  const view = await driver.createView(vmId, { mode: 'auto' });
  let ref;
  try {
    t.equal(view.consistency, 'crash', 'no guest agent: a crash-consistent checkpoint');
    const source = view.disks[0]!.source;
    t.match(source, { kind: 'file', path: disk });
    const [ovl] = overlays();
    t.match(ovl, /^sv-[0-9a-f]{8}-ovl0\.qcow2$/u, 'the overlay is on the share, beside the disk');
    const root = (await queryBlock(current.vm.qmp)).find((b) => b.qdev)?.inserted?.['node-name'];
    t.match(root, /^sv-[0-9a-f]{8}-ovl0$/u, 'the guest writes into the overlay');
    const fileRead = async (offset: number, length: number): Promise<Buffer> => (await readFile(disk)).subarray(offset, offset + length);
    const check = await checkWriterReads(fileRead, async () => {
      // the guest goes on writing, into the overlay: the base file does not move
      await waitForHeader(join(folder, ovl!), readHeader(disk) + 3, 'qcow2');
    });
    t.same(check.problems, [], `the base file passes the writer rule (header ${check.header})`);
    ref = view.disks[0]!.nextReference;
    await view.commit();
  } finally {
    await view.release();
  }
  await checkClean(t, current.vm.qmp, 'after release');
  const h = readHeader(disk);
  await waitForHeader(disk, h + 3);
  t.pass('the guest writes into its disk again');
  // the next view finds the changes of the overlay period and after it in the tracking bitmap
  const next = await driver.createView(vmId, { mode: 'auto' });
  try {
    const ans = await next.changes(0, ref!);
    t.equal(ans.usable, true, JSON.stringify(ans));
    if (ans.usable) t.ok(ans.extents.some(([o]) => o <= 1024 && o + 0 >= 0), `the header's block is among ${ans.extents.length} changed extents`);
    await next.abort();
  } finally {
    await next.release();
  }
  await checkClean(t, current.vm.qmp, 'after an aborted view');
});

t.test('kill -9 of the driver at random moments: the merge is completed or rolled back by its successor', async (t) => {
  const child = join(REPO_ROOT, 'build', 'test', 'helpers', 'driver-child.js');
  let seed = 0x5a3b;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const stages = new Map<string, number>();
  let withOverlay = 0;
  const n = rounds(8, 30);
  for (let round = 0; round < n; round++) {
    const proc = spawn(process.execPath, [child, stateDir, glob, vmId, 'auto', '50', share], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    while (!out.includes('VIEW')) {
      if (proc.exitCode !== null) throw new Error(`driver child exited: ${err}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, Math.floor(random() * 1500)));
    proc.kill('SIGKILL');
    await exited;
    if (overlays().length) withOverlay++;
    const last = out.trim().split('\n').at(-1)!;
    stages.set(last, (stages.get(last) ?? 0) + 1);
    const driver = newDriver();
    try {
      // the killed child's QMP connection may still hold the socket for a moment: a VM that does not answer
      // is left for the next cleanup (as the next start of an agent would), never merged behind QEMU's back
      let report = await driver.cleanupLeftovers();
      for (let i = 0; i < 5 && (report.errors.length || overlays().length); i++) {
        await new Promise((r) => setTimeout(r, 500));
        report = await driver.cleanupLeftovers();
      }
      t.same(report.errors, [], `round ${round} (killed after ${last}): ${report.removed.join('; ')}`);
      await checkClean(t, current.vm.qmp, `round ${round}`);
    } finally {
      await driver.close();
    }
  }
  t.comment(`${n} driver kill rounds; an overlay was on the share at ${withOverlay} of the kills; killed after: ${[...stages].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  t.ok(withOverlay > 0, 'some kills left an overlay to merge');
});

t.test('kill -9 of QEMU with a checkpoint open: merged offline, the disk passes the writer rule', async (t) => {
  const n = rounds(1, 4);
  for (let round = 0; round < n; round++) {
    // the writer rule needs a full ring: a restarted guest counts from 0 again
    if (round > 0) await waitForHeader(disk, 300, 'raw', 240_000);
    const driver = newDriver();
    const view = await driver.createView(vmId, { mode: 'auto' });
    const [ovl] = overlays();
    const h = readHeader(disk);
    await waitForHeader(join(folder, ovl!), h + 5, 'qcow2'); // guest writes that live only in the overlay
    current.vm.process.kill('SIGKILL');
    await new Promise<void>((r) => (current.vm.process.exitCode !== null || current.vm.process.signalCode !== null ? r() : current.vm.process.once('exit', () => r())));
    await view.release().catch(() => undefined); // QEMU gone: the view merges offline
    t.same(overlays(), [], `round ${round}: the overlay was merged and removed`);
    const report = await driver.cleanupLeftovers();
    t.same(report.errors, [], `round ${round}: cleanup: ${report.removed.join('; ')}`);
    await driver.close();
    t.ok(readHeader(disk) >= h + 5, `round ${round}: the writes of the overlay period are in the disk (header ${readHeader(disk)} >= ${h + 5})`);
    t.same(checkWriterImage(disk).problems, [], `round ${round}: the disk passes the writer rule`);
    current = await startDriverVm(t, { dir, name: 'w1', disks: [{ path: disk, format: 'raw' }] });
    await checkClean(t, current.vm.qmp, `round ${round}, restarted`);
  }
});
