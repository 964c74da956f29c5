/**
 * Regression: a failed createView once left the VM paused. Here every QMP command of a point-in-time view
 * fails in turn, on a real QEMU running the writer guest with two disks: the command is refused before it
 * is sent ("before": QEMU never ran it) or its answer is lost after QEMU ran it ("after", for the commands
 * of the instant). Whatever fails, afterwards:
 *   - the VM is running (query-status over the test's own QMP connection), no pause mark in the state file;
 *   - nothing of the view is left in QEMU (no sv- node, no export, every device back on its disk node);
 *   - each disk still has exactly one tracking bitmap, recording (a frozen one was merged back);
 *   - a createView that fails does so with SV_ERR_HYPERVISOR_VIEW_FAILED; a step that was retried (cont) may
 *     let it succeed, and then its view releases cleanly.
 * The injection wraps the driver's QmpClient (a Proxy over `execute`); QEMU, the disks and the guest are real.
 *
 * What it found: a `cont` that failed left the VM paused (now resumeIfPausedBy, retried and confirmed); a
 * refused `qom-set drive` made release set the drive to the node it was already on, which aborts QEMU 7.2
 * (setDriveBack checks first); a bitmap transaction whose answer was lost was not rolled back (abort now
 * looks for the new bitmap).
 */
import t, { type Test } from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SvError, hasCode } from '../../src/errors/index.js';
import { createRunningView, type CreateContext } from '../../src/hypervisor/qemu/create-view.js';
import { inspectVm, probeGuestAgent } from '../../src/hypervisor/qemu/inspect.js';
import { isOurs, isTrackingBitmap } from '../../src/hypervisor/qemu/names.js';
import { StateFile } from '../../src/hypervisor/qemu/state-file.js';
import { queryBlock, queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import { QmpClient } from '../../src/qemu/qmp.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { startDriverVm } from '../helpers/driver-vm.js';
import { makeWriterDisk } from '../helpers/writer-guest.js';

const dir = tempDir(t, 'sv-hv-fail-');
const G = 64 * 1024;
const disk0 = makeWriterDisk(join(dir, 'w.raw'), 'raw');
const disk1 = join(dir, 'd1.qcow2');
run(requireTool('qemu-img'), ['create', '-q', '-f', 'qcow2', disk1, '8M']);
const { vm, driverSocket } = await startDriverVm(t, { dir, name: 'fail', disks: [{ path: disk0, format: 'raw' }, { path: disk1, format: 'qcow2' }] });
const driverQmp = await QmpClient.connect(driverSocket, { connectTimeoutMs: 5000 });
t.teardown(() => driverQmp.close());
const state = new StateFile(join(dir, 'state'));
const qemuImg = requireTool('qemu-img');
mkdirSync(join(dir, 'scratch'));

type Mode = 'before' | 'after';
/** The driver's QMP connection with call number `failAt` (0-based) failing in `mode`; records command names. */
function injecting(failAt: number, mode: Mode, seen: string[]): QmpClient {
  return new Proxy(driverQmp, {
    get(target, prop) {
      if (prop === 'execute') {
        return async (command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<unknown> => {
          const n = seen.push(command) - 1;
          const lost = (): SvError => new SvError('SV_ERR_QEMU_TIMEOUT', `injected: ${command} (call ${n}, ${mode}) got no answer`, { command });
          if (n === failAt && mode === 'before') throw lost();
          const answer = await target.execute(command, args, opts);
          if (n === failAt) throw lost();
          return answer;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function context(qmp: QmpClient): Promise<CreateContext> {
  return {
    qmp, state, vm: await inspectVm(driverQmp, () => undefined), ga: await probeGuestAgent(driverQmp), scratchDir: join(dir, 'scratch'),
    nbdSocket: join(dir, 'nbd.sock'), qemuImg, cbwTimeoutS: 30, onCreated: () => undefined, onReleased: () => undefined,
  };
}

/** The VM after a (failed) view: running, nothing of ours in QEMU, one recording tracking bitmap per disk. */
async function checkClean(t: Test, what: string): Promise<void> {
  t.equal((await queryStatus(vm.qmp)).status, 'running', `${what}: the VM is running`);
  t.same(state.state.paused, {}, `${what}: no pause mark left`);
  const nodes = await queryNamedBlockNodes(vm.qmp);
  t.same(nodes.map((n) => n['node-name']).filter((n) => isOurs(n)), [], `${what}: no sv- node left`);
  t.same(await queryBlockExports(vm.qmp), [], `${what}: no export left`);
  t.same((await queryBlock(vm.qmp)).filter((b) => b.qdev).map((b) => b.inserted?.['node-name']), ['disk0', 'disk1'], `${what}: every device on its disk node`);
  for (const node of ['disk0', 'disk1']) {
    const bitmaps = (nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps'] ?? []).filter((b) => isTrackingBitmap(b.name));
    t.equal(bitmaps.length, 1, `${what}: ${node} has one tracking bitmap`);
    t.equal(bitmaps[0]?.recording, true, `${what}: and it records`);
  }
}

// Two clean views first: the disks get their tracking bitmaps, the NBD server runs; the second one's
// command sequence is what every later view sends.
let sequence: string[] = [];
for (let i = 0; i < 2; i++) {
  sequence = [];
  const v = await createRunningView(await context(injecting(-1, 'before', sequence)), { mode: 'offline', blockSize: G });
  sequence = sequence.slice(); // the view's own commands, before commit and release
  await v.commit();
  await v.release();
}

t.test('the sequence is what the test expects to cut', async (t) => {
  for (const c of ['stop', 'qom-set', 'transaction', 'cont', 'blockdev-add', 'block-export-add']) t.ok(sequence.includes(c), `createView sends ${c}`);
});

const INSTANT = new Set(['stop', 'qom-set', 'transaction', 'cont']);
const cases: Array<{ at: number; mode: Mode }> = [];
sequence.forEach((c, at) => {
  if (c.startsWith('query-')) return; // reads: failing them is no different from failing the step they serve
  cases.push({ at, mode: 'before' });
  if (INSTANT.has(c)) cases.push({ at, mode: 'after' });
});

for (const { at, mode } of cases) {
  const what = `${sequence[at]} #${at} fails ${mode} QEMU runs it`;
  t.test(what, async (t) => {
    let view;
    try {
      view = await createRunningView(await context(injecting(at, mode, [])), { mode: 'offline', blockSize: G });
    } catch (err) {
      t.ok(hasCode(err, 'SV_ERR_HYPERVISOR_VIEW_FAILED'), `createView fails with SV_ERR_HYPERVISOR_VIEW_FAILED (got ${(err as SvError).code})`);
    }
    if (view) {
      t.ok(sequence[at] === 'cont', 'only a retried cont lets the view succeed');
      await view.abort();
      await view.release();
    }
    await checkClean(t, what);
  });
}
