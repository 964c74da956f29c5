/**
 * Suite `hypervisor`: how long the QEMU driver stops or freezes a VM per point in time, under TCG.
 *   - offline pause: the writer guest (no guest agent), `createView({mode: 'offline'})` + commit + release in
 *     a loop; pauseMs = stop → filter in → bitmap transaction → cont;
 *   - freeze→thaw: the Linux test guest (qemu-ga), online views; freezeMs = guest-fsfreeze-freeze sent →
 *     thaw confirmed (includes the pause inside it).
 * Targets (issue 10): offline pause median < 1 s and p99 < 2 s; freeze→thaw median < 1 s.
 * Uses the test guests (test/helpers: writer.bin from ../shared, the initramfs built by
 * scripts/build-guest-initramfs.sh). `--quick`: 10 and 3 views.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuDriver } from '../src/hypervisor/qemu/driver.js';
import { driverQmpArgs, startDriverVm } from '../test/helpers/driver-vm.js';
import { startLinuxGuest } from '../test/helpers/linux-guest.js';
import { makeWriterDisk, waitForHeader } from '../test/helpers/writer-guest.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function row(what: string, values: number[], target: string, met: boolean): BenchRow {
  const s = [...values].sort((a, b) => a - b);
  return { measure: what, views: s.length, 'median ms': percentile(s, 50), 'p99 ms': percentile(s, 99), 'max ms': s[s.length - 1]!, target, met };
}

async function views(driver: QemuDriver, n: number, mode: 'offline' | 'online', pick: (v: { pauseMs?: number; freezeMs?: number }) => number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = await driver.createView(VM_ID, { mode });
    try {
      out.push(pick(v));
      await v.commit();
    } finally {
      await v.release();
    }
  }
  return out;
}

export const hypervisorSuite: Suite = {
  name: 'hypervisor',
  description: 'QEMU driver: offline pause and online freeze→thaw per point in time (TCG)',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const teardowns: Array<() => void | Promise<void>> = [];
    const t = { teardown: (fn: () => void | Promise<void>) => void teardowns.push(fn) };
    const dir = mkdtempSync(join(tmpdir(), 'sv-bench-hv-'));
    const rows: BenchRow[] = [];
    try {
      options.log('hypervisor: writer guest, offline views');
      const wdir = join(dir, 'w');
      mkdirSync(wdir);
      const disk = makeWriterDisk(join(wdir, 'disk.raw'), 'raw');
      const w = await startDriverVm(t, { dir: wdir, name: 'writer', disks: [{ path: disk, format: 'raw' }] });
      await waitForHeader(disk, 300);
      const wd = new QemuDriver({ qmp: [w.driverSocket], stateDir: join(wdir, 'state') });
      teardowns.push(() => wd.close());
      const pauses = await views(wd, options.quick ? 10 : 50, 'offline', (v) => v.pauseMs!);
      const sp = [...pauses].sort((a, b) => a - b);
      rows.push(row('offline pause (writer guest)', pauses, 'median < 1000, p99 < 2000', percentile(sp, 50) < 1000 && percentile(sp, 99) < 2000));
      await w.vm.shutdown();

      options.log('hypervisor: Linux guest, online views');
      const ldir = join(dir, 'l');
      mkdirSync(ldir);
      const { driverSocket, args } = driverQmpArgs(ldir, 'linux');
      await startLinuxGuest(t, ldir, { extraArgs: args });
      const ld = new QemuDriver({ qmp: [driverSocket], stateDir: join(ldir, 'state') });
      teardowns.push(() => ld.close());
      const n = options.quick ? 3 : 20;
      const both: Array<{ pauseMs?: number; freezeMs?: number }> = [];
      await views(ld, n, 'online', (v) => (both.push(v), 0));
      const freezes = both.map((v) => v.freezeMs!);
      const sf = [...freezes].sort((a, b) => a - b);
      rows.push(row('freeze→thaw (Linux guest, qemu-ga)', freezes, 'median < 1000', percentile(sf, 50) < 1000));
      rows.push(row('pause inside the freeze (Linux guest)', both.map((v) => v.pauseMs!), '-', true));
    } finally {
      for (const fn of teardowns.reverse()) await fn();
      rmSync(dir, { recursive: true, force: true });
    }
    return { rows, notes: ['TCG (no KVM); each view = createView + commit + release; the VM keeps running between views'] };
  },
};
