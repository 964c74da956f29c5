/**
 * The agent's inventory: the host report plus every VM of the driver with its online check. Built on
 * connect, then every poll; pushed to the appliance (`inventory.push`) when it differs from the last push on
 * this connection (the JSON text is the diff key: VMs are sorted by id, so order changes are no changes).
 */
import type { HypervisorDriver } from '../hypervisor/driver.js';
import type { HostReport, InventoryReport, VmReport } from './rpc.js';

export async function buildInventory(driver: HypervisorDriver, host: Omit<HostReport, 'hypervisor'>): Promise<InventoryReport> {
  const vms = await driver.listVms();
  const reports: VmReport[] = [];
  for (const vm of vms) {
    let online: VmReport['online'];
    try {
      online = await driver.checkOnline(vm.id);
    } catch (err) {
      online = { possible: false, unmet: [{ requirement: 'vm-running', reason: `cannot check: ${(err as Error).message}` }] };
    }
    reports.push({ ...vm, online });
  }
  reports.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { host: { ...host, hypervisor: { name: driver.hypervisor.name, version: driver.hypervisor.version } }, vms: reports };
}
