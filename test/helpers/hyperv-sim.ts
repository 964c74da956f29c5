/**
 * Helpers for the Hyper-V SIMULATION tests: a simulated VM with its guest running, waiting for the guest's
 * ring to fill, and the shared writer rule checked on a view's `file` source (read with our own reader).
 */
import { join } from 'node:path';
import { openDisk } from '../../src/formats/open.js';
import type { DiskSourceRef } from '../../src/sources/types.js';
import { SimulatedHyperVHost, type SimVmSpec } from '../../src/hypervisor/hyperv/simulated-host.js';
import { guestCall } from '../../src/hypervisor/hyperv/sim/guest-control.js';
import { checkWriterReads, type WriterCheck } from './writer-guest.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface SimVm {
  host: SimulatedHyperVHost;
  vmId: string;
  vmDir: string;
}

/** A simulated host under `dir` with one VM (64 MiB disk 0 + `extraDisks`), its guest started and stopped at teardown. */
export async function startSimVm(t: Teardown, dir: string, spec: Partial<SimVmSpec> = {}): Promise<SimVm> {
  const host = new SimulatedHyperVHost(join(dir, 'sim'));
  const vmId = await host.createVm({ name: 'writer', disks: [64 << 20], ...spec });
  await host.startVm(vmId);
  t.teardown(() => host.stopVm(vmId));
  return { host, vmId, vmDir: host.store.dir(vmId) };
}

/** The simulated guest's counter (ticks written). */
export async function guestCounter(vmDir: string): Promise<number> {
  return (await guestCall(vmDir, 'status')).counter ?? 0;
}

export async function waitForGuest(vmDir: string, atLeast: number, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await guestCounter(vmDir);
    if (c >= atLeast) return c;
    if (Date.now() > deadline) throw new Error(`simulated guest: counter ${c} did not reach ${atLeast} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The writer rule on a `file` source: header, then `between` (the guest writes on), then the ring. */
export async function checkFileView(source: DiskSourceRef, between: () => Promise<void> = async () => undefined): Promise<WriterCheck> {
  if (source.kind !== 'file') throw new Error(`expected a file source, got ${source.kind}`);
  const img = await openDisk(source.path);
  try {
    return await checkWriterReads((offset, length) => img.read(offset, length), between);
  } finally {
    await img.close();
  }
}
