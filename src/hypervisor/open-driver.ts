/**
 * The agent's choice of hypervisor driver (`shadowvault agent --driver`): qemu (QMP sockets), hyperv (the
 * PowerShell/CIM host layer on a Windows Hyper-V host) or hyperv-sim (the Hyper-V driver on the SIMULATION in
 * `simRoot`). Each driver keeps its state in its own folder under the agent's data folder.
 */
import { join } from 'node:path';
import type { HypervisorDriver } from './driver.js';

export type DriverName = 'qemu' | 'hyperv' | 'hyperv-sim';

export interface DriverChoice {
  readonly driver: DriverName;
  /** qemu: QMP sockets or globs. */
  readonly qmp: readonly string[];
  /** hyperv-sim: the simulation's folder. */
  readonly simRoot: string;
  readonly dataDir: string;
  /** `--replica` declarations (replica/config.ts): replica VMs added to the driver's VMs. */
  readonly replicas?: readonly string[];
  /** qemu: folders (SMB shares' local paths) whose VMs get checkpoint views. */
  readonly checkpointIn?: readonly string[];
}

export async function openDriver(c: DriverChoice): Promise<HypervisorDriver> {
  if (!c.replicas?.length) return openHostDriver(c);
  const [{ parseReplicaSpecs }, { ReplicaDriver }] = await Promise.all([import('./replica/config.js'), import('./replica/driver.js')]);
  const replicas = parseReplicaSpecs(c.replicas);
  // a host may hold replicas only: then no QMP socket of its own is needed
  const inner = c.driver === 'qemu' && c.qmp.length === 0 ? null : await openHostDriver(c);
  return new ReplicaDriver({ inner, replicas, stateDir: join(c.dataDir, 'replica') });
}

async function openHostDriver(c: DriverChoice): Promise<HypervisorDriver> {
  if (c.driver === 'qemu') {
    const { QemuDriver } = await import('./qemu/driver.js');
    return new QemuDriver({ qmp: c.qmp, stateDir: join(c.dataDir, 'qemu'), ...(c.checkpointIn?.length ? { checkpointIn: c.checkpointIn } : {}) });
  }
  const { HyperVDriver } = await import('./hyperv/driver.js');
  if (c.driver === 'hyperv') {
    const { PowerShellHyperVHost } = await import('./hyperv/powershell.js');
    return new HyperVDriver({ host: new PowerShellHyperVHost(), stateDir: join(c.dataDir, 'hyperv') });
  }
  const { SimulatedHyperVHost } = await import('./hyperv/simulated-host.js');
  return new HyperVDriver({ host: new SimulatedHyperVHost(c.simRoot), stateDir: join(c.dataDir, 'hyperv-sim') });
}
