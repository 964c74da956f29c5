/**
 * VMs for the hypervisor driver tests: a test VM (test/helpers/vm.ts) with a second QMP socket
 * `<dir>/<name>.drv.qmp` for the driver (a QMP socket serves one client at a time; the test keeps its own),
 * and reading the writer guest's header and ring out of a view's NBD export.
 */
import { join } from 'node:path';
import { NbdClient } from '../../src/nbd/client.js';
import type { DiskSourceRef } from '../../src/sources/types.js';
import { startVm, type Vm, type VmOptions } from './vm.js';
import { checkWriterReads, type WriterCheck } from './writer-guest.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface DriverVm {
  vm: Vm;
  /** The QMP socket the driver uses. */
  driverSocket: string;
}

/** The extra QEMU arguments of a driver QMP socket `<dir>/<name>.drv.qmp`. */
export function driverQmpArgs(dir: string, name: string): { driverSocket: string; args: string[] } {
  const driverSocket = join(dir, `${name}.drv.qmp`);
  return { driverSocket, args: ['-qmp', `unix:${driverSocket},server=on,wait=off`] };
}

export async function startDriverVm(t: Teardown, opts: VmOptions): Promise<DriverVm> {
  const { driverSocket, args } = driverQmpArgs(opts.dir, opts.name ?? 'vm');
  const vm = await startVm(t, { ...opts, extraArgs: [...args, ...(opts.extraArgs ?? [])] });
  return { vm, driverSocket };
}

export async function openNbd(source: DiskSourceRef, metaContexts?: string[]): Promise<NbdClient> {
  if (source.kind !== 'nbd') throw new Error(`expected an nbd source, got ${source.kind}`);
  return NbdClient.connect({ target: { path: source.socket }, exportName: source.exportName, ...(metaContexts ? { metaContexts } : {}) });
}

/**
 * The writer rule on a view: read the header, run `between` (e.g. wait until the live guest wrote more),
 * then read the ring. A view that is one point in time passes whatever the guest did in between.
 */
export async function checkWriterView(source: DiskSourceRef, between: () => Promise<void> = async () => undefined): Promise<WriterCheck> {
  const client = await openNbd(source);
  try {
    return await checkWriterReads((offset, length) => client.read(offset, length), between);
  } finally {
    await client.close();
  }
}
