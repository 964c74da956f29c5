/**
 * The QEMU driver on the real Linux guest (qemu-ga → online views), one boot for the file: online views are
 * application-consistent (e2fsck -fn clean, every finished file matches its checksum) and the guest is never
 * left frozen, also after a failing view; then the driver process is killed with kill -9 at random moments
 * of createView/commit/abort/release (20 rounds, 60 with SHADOWVAULT_SOAK=1): each time the VM runs, the
 * guest is thawed, cleanupLeftovers removes exactly what the dead run left (also when QEMU greets it only
 * after its first connect gave up), or, in rounds without a cleanup, the next view does, and that view is
 * correct.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { once } from 'node:events';
import { hasCode } from '../../src/errors/index.js';
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import { GuestAgentClient } from '../../src/qemu/guest-agent.js';
import type { QmpClient } from '../../src/qemu/qmp.js';
import { queryBlock, queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import type { PointInTimeView } from '../../src/hypervisor/driver.js';
import { REPO_ROOT, childEnv, requireTool, run, tempDir } from '../helpers/env.js';
import { checkGuestFiles, fsck, startLinuxGuest } from '../helpers/linux-guest.js';
import { driverQmpArgs } from '../helpers/driver-vm.js';
import { rounds } from '../helpers/soak.js';

const dir = tempDir(t, 'sv-hv-linux-');
const { driverSocket, args } = driverQmpArgs(dir, 'linux');
const guest = await startLinuxGuest(t, dir, { extraArgs: args });
t.comment(`Linux guest ready ${guest.bootMs} ms after QEMU start`);
const { vm, guestAgentSocket: gaSocket } = guest;
const vmId = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const stateDir = join(dir, 'state');
const glob = join(dir, '*.drv.qmp');
const qemuImg = requireTool('qemu-img');
t.ok(driverSocket.endsWith('linux.drv.qmp'));

async function fsfreezeStatus(): Promise<string> {
  const ga = await GuestAgentClient.connect(gaSocket, { commandTimeoutMs: 10_000 });
  try {
    return await ga.fsfreezeStatus();
  } finally {
    ga.close();
  }
}

/** Copy the view's disk over NBD and check the guest's rule on the copy. */
function checkCopy(t: Test, view: PointInTimeView, name: string): void {
  const src = view.disks[0]!.source;
  if (src.kind !== 'nbd') throw new Error('nbd source expected');
  const copy = join(dir, `${name}.raw`);
  run(qemuImg, ['convert', '-O', 'raw', `nbd+unix:///${src.exportName}?socket=${src.socket}`, copy]);
  const check = fsck(copy, view.consistency === 'application' ? {} : { replayJournal: true });
  t.equal(check.status, 0, `${name}: e2fsck -fn: ${check.output.slice(0, 400)}`);
  const walk = checkGuestFiles(copy, dir);
  t.ok(walk.files > 0, `${name}: ${walk.files} files`);
  t.same(walk.bad, [], `${name}: every file matches its checksum`);
}

/** A bare connection to a QMP socket: while it is open, QEMU greets no other client on that socket. */
async function holdMonitor(path: string): Promise<Socket> {
  const sock = createConnection(path);
  await once(sock, 'connect');
  sock.on('data', () => {});
  sock.on('error', () => {});
  return sock;
}

/** Nothing of ours left in QEMU or the scratch folder; the device on its own node; one recording bitmap. */
async function checkClean(t: Test, qmp: QmpClient, what: string): Promise<void> {
  t.same((await queryBlockExports(qmp)).map((e) => e.id), [], `${what}: no export`);
  const nodes = await queryNamedBlockNodes(qmp);
  t.same(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('sv-')), [], `${what}: no node`);
  t.same((await qmp.execute<unknown[]>('query-jobs')), [], `${what}: no job`);
  t.equal((await queryBlock(qmp)).find((b) => b.qdev?.includes('vblk0'))?.inserted?.['node-name'], 'disk0', `${what}: the device is on its disk node`);
  const bitmaps = (nodes.find((n) => n['node-name'] === 'disk0')?.['dirty-bitmaps'] ?? []).filter((b) => b.name?.startsWith('sv-'));
  t.ok(bitmaps.length <= 1 && bitmaps.every((b) => b.recording && !b.inconsistent), `${what}: at most one recording tracking bitmap (${bitmaps.map((b) => `${b.name}:${b.recording}`).join(', ')})`);
  let scratch: string[] = [];
  try {
    scratch = readdirSync(join(stateDir, 'scratch'));
  } catch {
    scratch = [];
  }
  t.same(scratch, [], `${what}: no scratch file`);
  t.equal((await queryStatus(qmp)).status, 'running', `${what}: the VM runs`);
  t.equal(await fsfreezeStatus(), 'thawed', `${what}: the guest is thawed`);
}

t.test('online views: application-consistent, never left frozen', async (t) => {
  const driver = new QemuDriver({ qmp: [glob], stateDir });
  t.teardown(() => driver.close());
  const listed = (await driver.listVms()).find((v) => v.id === vmId)!;
  t.match(listed.guestAgent, { present: true, answering: true, version: /\d/ });
  t.same(await driver.checkOnline(vmId), { possible: true, unmet: [] });
  const freezes: number[] = [];
  for (let i = 0; i < 2; i++) {
    const view = await driver.createView(vmId, { mode: 'auto' });
    try {
      t.equal(view.consistency, 'application');
      t.same(view.reasons, []);
      t.ok(Number.isFinite(view.freezeMs), `freezeMs ${view.freezeMs}, pauseMs ${view.pauseMs}`);
      freezes.push(view.freezeMs!);
      t.equal(await fsfreezeStatus(), 'thawed', 'thawed as soon as the view exists');
      checkCopy(t, view, `online-${i}`);
      await view.commit();
    } finally {
      await view.release();
    }
  }
  t.comment(`freezeMs: ${freezes.join(', ')}`);
  const offline = await driver.createView(vmId, { mode: 'offline' });
  try {
    t.equal(offline.consistency, 'offline');
    checkCopy(t, offline, 'offline');
    await offline.commit();
  } finally {
    await offline.release();
  }
  await checkClean(t, vm.qmp, 'after the views');
});

t.test('a failing online view leaves the guest thawed and nothing behind', async (t) => {
  const driver = new QemuDriver({ qmp: [glob], stateDir });
  t.teardown(() => driver.close());
  const err = await driver.createView(vmId, { mode: 'online', freezeTimeoutMs: 1 }).then(() => null, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_HYPERVISOR_FREEZE_FAILED'), String(err));
  await checkClean(t, vm.qmp, 'after a view whose freeze overran its bound');
  const denied = await driver.createView(vmId, { mode: 'online', allowOnline: false }).then(() => null, (e: unknown) => e);
  t.ok(hasCode(denied, 'SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE'), String(denied));
  t.same(await driver.cleanupLeftovers(), { removed: [], errors: [] });
});

t.test('kill -9 of the driver at random moments, 20 rounds', async (t) => {
  const child = join(REPO_ROOT, 'build', 'test', 'helpers', 'driver-child.js');
  let seed = 0x5eed;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const stages = new Map<string, number>();
  for (let round = 0, n = rounds(20, 60); round < n; round++) {
    const proc = spawn(process.execPath, [child, stateDir, glob, vmId, round % 3 === 2 ? 'offline' : 'auto', '50'], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    while (!out.includes('READY')) {
      if (proc.exitCode !== null) throw new Error(`driver child exited: ${err}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const wait = Math.floor(random() * 3500);
    // the rounds that test a held monitor or no cleanup kill the child as soon as its view exists (something
    // to remove for sure); the others at a random moment
    if (round % 7 === 1 || round % 7 === 4) {
      while (!out.includes('VIEW') && proc.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    } else {
      await new Promise((r) => setTimeout(r, wait));
    }
    proc.kill('SIGKILL');
    await exited;
    const lines = out.trim().split('\n');
    const last = lines[lines.length - 1]!;
    stages.set(last, (stages.get(last) ?? 0) + 1);
    t.equal(err.replace(/\(node:\d+\) .*Warning.*\n?/gu, '').trim(), '', `round ${round}: the child failed with no error of its own`);
    const driver = new QemuDriver({ qmp: [glob], stateDir });
    try {
      if (round % 7 !== 4) {
        // some rounds, another client holds the driver's monitor (QEMU serves one per socket) past the first
        // connect's bound, as a QEMU busy draining the dead run's I/O does: cleanup waits for it, never skips
        const hold = round % 7 === 1 ? await holdMonitor(driverSocket) : undefined;
        const cleaning = driver.cleanupLeftovers();
        if (hold) setTimeout(() => hold.destroy(), 2500);
        const report = await cleaning;
        t.same(report.errors, [], `round ${round} (killed after ${last}${hold ? ', monitor held 2.5 s' : ''}): cleanup removed ${report.removed.length}: ${report.removed.join('; ')}`);
        await checkClean(t, vm.qmp, `round ${round}`);
      }
      // the other rounds, no cleanup ran (it could not reach QEMU): the next view removes the dead run's work first
      const view = await driver.createView(vmId, { mode: 'auto' });
      t.equal(view.consistency, 'application', `round ${round}: the next view is online`);
      await view.commit();
      await view.release();
      if (round % 7 === 4) await checkClean(t, vm.qmp, `round ${round} (no cleanup; after the next view)`);
    } finally {
      await driver.close();
    }
  }
  t.comment(`killed after: ${[...stages].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  const driver = new QemuDriver({ qmp: [glob], stateDir });
  t.teardown(() => driver.close());
  const view = await driver.createView(vmId, { mode: 'auto' });
  try {
    checkCopy(t, view, 'after-kills');
    await view.commit();
  } finally {
    await view.release();
  }
  await checkClean(t, vm.qmp, 'at the end');
});
