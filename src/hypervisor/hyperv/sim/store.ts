/**
 * SIMULATION (SimulatedHyperVHost): the simulated host's VM configurations, one folder per VM.
 *
 * Layout under the simulation root:
 *   <root>/<vmId>/vm.json                      the VM
 *   <root>/<vmId>/Virtual Hard Disks/*.vhdx     base disks (project's VHDX writer), `.simrct` beside each
 *   <root>/<vmId>/Virtual Hard Disks/*.avhdx    differencing children of the recovery checkpoints
 *   <root>/<vmId>/guest.sock                    the simulated guest's control socket (guest.ts)
 * vm.json (written atomically: util/durable.ts) is the commit point of every change: a checkpoint's .avhdx exists before vm.json names it, and a
 * merged .avhdx is deleted after vm.json stops naming it; a file vm.json does not name is an orphan the next
 * checkpoint removes. One process changes a VM at a time (the driver's); the guest only reads vm.json.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../../errors/index.js';
import { atomicWrite } from '../../../util/durable.js';
import type { HvBackupService, HvCheckpoint, HvDisk, HvReferencePoint, HvVm } from '../host.js';

export interface SimCheckpoint extends HvCheckpoint {
  /** Per disk: the .avhdx the VM writes to while this checkpoint exists. */
  readonly children: ReadonlyArray<{ readonly diskIdentifier: string; readonly path: string }>;
  /** Per disk: the simulated RCT id of the checkpoint's point in time (its marker in the .simrct log). */
  readonly rctIds: ReadonlyArray<{ readonly diskIdentifier: string; readonly rctId: string }>;
}

export interface SimVm {
  id: string;
  name: string;
  state: HvVm['state'];
  generation: 1 | 2;
  configurationVersion: string;
  backup: HvBackupService;
  cluster: HvVm['cluster'];
  storage: HvVm['storage'];
  disks: Array<{ -readonly [K in keyof HvDisk]: HvDisk[K] }>;
  checkpoints: SimCheckpoint[];
  referencePoints: HvReferencePoint[];
  /** Merging of checkpoints allowed (a failed product may leave it off). */
  mergeEnabled: boolean;
  /** Fault injection for tests: the next N merges fail. */
  faults: { mergeFails: number };
  /** The simulated guest process, when running. */
  guestPid: number | null;
}

export const VM_FILE = 'vm.json';
export const DISK_DIR = 'Virtual Hard Disks';

export class SimStore {
  constructor(readonly root: string) {}

  dir(vmId: string): string {
    return join(this.root, vmId);
  }

  ids(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    } catch {
      return [];
    }
  }

  find(vmId: string): SimVm | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir(vmId), VM_FILE), 'utf8');
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(text) as SimVm;
    } catch (err) {
      throw new SvError('SV_ERR_HYPERV_HOST', `simulation: ${join(this.dir(vmId), VM_FILE)} is not JSON: ${(err as Error).message}`, { vmId }, { cause: err });
    }
  }

  get(vmId: string): SimVm {
    const vm = this.find(vmId);
    if (!vm) throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `simulation: no VM ${vmId} under ${this.root}`, { vmId });
    return vm;
  }

  async save(vm: SimVm): Promise<void> {
    await atomicWrite(join(this.dir(vm.id), VM_FILE), `${JSON.stringify(vm, null, 2)}\n`, 0o600);
  }

  async update(vmId: string, change: (vm: SimVm) => void): Promise<SimVm> {
    const vm = this.get(vmId);
    change(vm);
    await this.save(vm);
    return vm;
  }

  /** Find the VM and checkpoint by checkpoint id. */
  byCheckpoint(checkpointId: string): { vm: SimVm; cp: SimCheckpoint } {
    for (const id of this.ids()) {
      const vm = this.find(id);
      const cp = vm?.checkpoints.find((c) => c.id === checkpointId);
      if (vm && cp) return { vm, cp };
    }
    throw new SvError('SV_ERR_HYPERV_JOB_FAILED', `simulation: no checkpoint ${checkpointId} (Msvm_VirtualSystemSettingData not found)`, { checkpointId, returnValue: 4096 });
  }
}
