/**
 * A HypervisorDriver over plain image files, for the agent methods' tests: each "VM" is a list of raw image
 * files; a view copies them (the point in time) into snapshot files and serves those as `file` references,
 * which is exactly how the Hyper-V driver will serve a frozen parent VHDX. No change tracking (changes() is
 * unusable with a reason), no online mode. It records what it did, so tests can check that views were
 * committed, aborted and released (and that release removed the snapshot files).
 */
import { copyFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SvError } from '../../src/errors/index.js';
import type { ChangeAnswer, CleanupReport, HypervisorDriver, OnlineCheck, PointInTimeView, ViewRequest, VmInfo } from '../../src/hypervisor/driver.js';

export interface FileVm {
  readonly id: string;
  readonly name: string;
  readonly disks: readonly string[];
}

export class FileDriver implements HypervisorDriver {
  readonly hypervisor = { name: 'qemu' as const, version: 'file-driver' };
  readonly events: string[] = [];
  readonly #vms: FileVm[];
  readonly #snapDir: string;
  #n = 0;

  constructor(vms: FileVm[], snapDir: string) {
    this.#vms = vms;
    this.#snapDir = snapDir;
  }

  async listVms(): Promise<VmInfo[]> {
    return Promise.all(this.#vms.map(async (vm) => ({
      id: vm.id, name: vm.name, state: 'running' as const, guestAgent: { present: false, answering: false },
      disks: await Promise.all(vm.disks.map(async (p, i) => ({
        key: `disk${i}`, device: `disk${i}`, format: 'raw', virtualSize: (await stat(p)).size, path: p, identity: p, snapshottable: true,
        tracking: { state: 'unsupported' as const, reason: 'file driver', persistent: false },
      }))),
    })));
  }

  async checkOnline(): Promise<OnlineCheck> {
    return { possible: false, unmet: [{ requirement: 'guest-agent', reason: 'file driver: no guest agent' }] };
  }

  async createView(vmId: string, req: ViewRequest): Promise<PointInTimeView> {
    const vm = this.#vms.find((v) => v.id === vmId);
    if (!vm) throw new SvError('SV_ERR_AGENT_VM_NOT_HOSTED', `no VM ${vmId}`, { vmId });
    const n = ++this.#n;
    const snaps = vm.disks.map((p, i) => join(this.#snapDir, `view${n}-${i}-${basename(p)}`));
    for (const [i, p] of vm.disks.entries()) await copyFile(p, snaps[i]!);
    const events = this.events;
    events.push(`open ${n} ${req.mode}`);
    const sizes = await Promise.all(snaps.map(async (s) => (await stat(s)).size));
    let state: 'open' | 'committed' | 'aborted' | 'released' = 'open';
    return {
      vmId, consistency: 'offline', reasons: ['guest-agent: file driver'], pauseMs: 1,
      disks: snaps.map((s, i) => ({
        index: i, key: `disk${i}`, name: basename(vm.disks[i]!), virtualSize: sizes[i]!, identity: vm.disks[i]!,
        source: { kind: 'file', path: s, format: 'raw' }, nextReference: null,
      })),
      async changes(): Promise<ChangeAnswer> {
        return { usable: false, reason: 'file driver has no change tracking' };
      },
      async configuration(): Promise<never> {
        throw new SvError('SV_ERR_HYPERVISOR_NO_CONFIGURATION', 'file driver: its VMs have no configuration', { vmId });
      },
      async commit() {
        if (state === 'open') { state = 'committed'; events.push(`commit ${n}`); }
      },
      async abort() {
        if (state === 'open') { state = 'aborted'; events.push(`abort ${n}`); }
      },
      async release() {
        if (state === 'released') return;
        if (state === 'open') events.push(`abort ${n}`);
        state = 'released';
        for (const s of snaps) await rm(s, { force: true });
        events.push(`release ${n}`); // after the files are gone: a test that waits for this event then sees none
      },
    };
  }

  async importVm(): Promise<never> {
    throw new SvError('SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', 'file driver: nothing to import into', {});
  }

  async cleanupLeftovers(): Promise<CleanupReport> {
    return { removed: [], errors: [] };
  }

  async close(): Promise<void> {}
}
