/**
 * The agent's inventory: the host report plus every VM of the driver with its online check. Built on
 * connect, then every poll; pushed to the appliance (`inventory.push`) when it differs from the last push on
 * this connection (the JSON text is the diff key: VMs are sorted by id, so order changes are no changes).
 * `ownerOf` adds each VM's owner (its ownership record, src/agent/owner.ts): a record that cannot be read is
 * reported as the VM's error, not as "no owner".
 */
import type { HypervisorDriver, VmInfo } from '../hypervisor/driver.js';
import type { OwnerRecord } from './owner.js';
import type { HostReport, InventoryReport, VmReport } from './rpc.js';

export interface InventoryOptions {
  /** The VM's owner (absent: none); throws when its record cannot be read. */
  readonly ownerOf?: (vm: VmInfo) => Promise<OwnerRecord | undefined>;
}

export async function buildInventory(driver: HypervisorDriver, host: Omit<HostReport, 'hypervisor'>, opts: InventoryOptions = {}): Promise<InventoryReport> {
  const vms = await driver.listVms();
  const reports: VmReport[] = [];
  for (const vm of vms) {
    let online: VmReport['online'];
    try {
      online = await driver.checkOnline(vm.id);
    } catch (err) {
      online = { possible: false, unmet: [{ requirement: 'vm-running', reason: `cannot check: ${(err as Error).message}` }] };
    }
    let owner: OwnerRecord | undefined;
    let error = vm.error;
    try {
      owner = await opts.ownerOf?.(vm);
    } catch (err) {
      const e = err as { code?: string; message: string };
      error ??= { code: e.code ?? 'SV_ERR_AGENT_OWNER_RECORD', message: e.message };
    }
    reports.push({ ...vm, online, ...(owner ? { owner } : {}), ...(error ? { error } : {}) });
  }
  reports.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { host: { ...host, hypervisor: { name: driver.hypervisor.name, version: driver.hypervisor.version } }, vms: reports };
}
