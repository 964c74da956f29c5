/**
 * `SimulatedHyperVHost`: a SIMULATION of a Hyper-V host (host.ts) over real files in a folder, for the tests and
 * `shadowvault agent --driver hyperv-sim`. It is not Hyper-V and says so: description "hyperv-sim (simulation)".
 *
 * What is real: the disks are VHDX files written by the project's VHDX writer and read by its reader; a
 * checkpoint writes a real differencing `.avhdx` child (writer, `parentPath`) and the simulated guest's writes go
 * to it from then on; a merge (ConvertToReferencePoint, DestroySnapshot) really copies the child's blocks into
 * its parent and deletes the child; the guest is a separate process (sim/guest.ts) writing with the shared
 * writer guest's consistency rule. What is simulated: RCT (a log of the guest's writes beside the base disk,
 * sim/rct-log.ts), the VM configuration (vm.json, sim/store.ts; exported as `<id>.sim-vmcx.json`, not a real
 * .vmcx), integration services and clusters (fields of vm.json a test sets), and fault injection (the next N
 * merges fail). Folder layout and commit order: sim/store.ts.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openDisk } from '../../formats/open.js';
import type { BlockSource } from '../../formats/types.js';
import { writeDisk } from '../../formats/write.js';
import type {
  CheckpointRequest, HvBackupService, HvCheckpoint, HvDiskChanges, HvReferencePoint, HvVm, HyperVHost,
} from './host.js';
import { jobFailed, mergeCheckpoint, moveStorage, removeOrphans, withGuestPaused } from './sim/disk-ops.js';
import { guestCall, spawnGuest } from './sim/guest-control.js';
import { SIM_CONFIG_LABEL, SIM_CONFIG_SUFFIX, encodeSimConfig, parseSimConfig } from './sim/config-file.js';
import { appendMarker, changesBetween } from './sim/rct-log.js';
import { DISK_DIR, SimStore, type SimCheckpoint, type SimVm } from './sim/store.js';

const MiB = 1024 * 1024;
/** Block size of the simulation's VHDX files (small: a merge copies whole blocks). */
const SIM_BLOCK = 1 * MiB;
/** Most ranges one simulated GetVirtualDiskChanges returns (the caller loops on ProcessedByteLength). */
export const SIM_MAX_RANGES = 16;

export interface SimVmSpec {
  readonly name: string;
  /** Virtual sizes of the disks in bytes (multiples of 1 MiB); disk 0 is the one the simulated guest writes. */
  readonly disks: readonly number[];
  readonly generation?: 1 | 2;
  /** Default "9.0"; below "6.2" there is no RCT (the driver falls back to digests). */
  readonly configurationVersion?: string;
  readonly backup?: Partial<HvBackupService>;
  readonly cluster?: HvVm['cluster'];
  readonly storage?: HvVm['storage'];
}

function emptySource(virtualSize: number): BlockSource {
  return { virtualSize, blockSize: SIM_BLOCK, async *blocks() { /* nothing: all zero / all parent */ } };
}

export class SimulatedHyperVHost implements HyperVHost {
  readonly description = 'hyperv-sim (simulation)';
  readonly store: SimStore;
  #seq = 0;

  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
    this.store = new SimStore(root);
  }

  // ----- simulation-only: making and running VMs, fault injection -----

  async createVm(spec: SimVmSpec): Promise<string> {
    const id = randomUUID();
    const dir = this.store.dir(id);
    mkdirSync(join(dir, DISK_DIR), { recursive: true });
    const disks: SimVm['disks'] = [];
    for (const [i, size] of spec.disks.entries()) {
      const path = join(dir, DISK_DIR, `${spec.name}-disk${i}.vhdx`);
      await writeDisk('vhdx', emptySource(size), path, { variant: 'dynamic', blockSize: SIM_BLOCK });
      const img = await openDisk(path);
      const page83 = String(img.info.extra.page83Data);
      await img.close();
      disks.push({ controllerType: 'SCSI', controllerNumber: 0, controllerLocation: i, path, basePath: path, format: 'VHDX', virtualSize: size, diskIdentifier: page83 });
    }
    await this.store.save({
      id, name: spec.name, state: 'Off', generation: spec.generation ?? 2, configurationVersion: spec.configurationVersion ?? '9.0',
      backup: { enabled: true, responding: true, guestProblems: [], ...spec.backup },
      cluster: spec.cluster ?? null, storage: spec.storage ?? 'Local', disks, checkpoints: [], referencePoints: [], mergeEnabled: true,
      faults: { mergeFails: 0 }, guestPid: null,
    });
    return id;
  }

  /**
   * Start the VM: its simulated guest process (stopped by stopVm). `detached`: the guest outlives this process
   * (the CLI); otherwise it is this process's child.
   */
  async startVm(vmId: string, opts: { detached?: boolean } = {}): Promise<number> {
    this.store.get(vmId);
    const child = await spawnGuest(this.store.dir(vmId), opts);
    child.unref();
    (child.stdout as { unref?: () => void } | null)?.unref?.();
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    await this.store.update(vmId, (vm) => {
      vm.state = 'Running';
      vm.guestPid = child.pid ?? null;
    });
    return child.pid!;
  }

  async stopVm(vmId: string): Promise<void> {
    const vm = this.store.get(vmId);
    if (vm.guestPid) {
      try {
        process.kill(vm.guestPid, 'SIGTERM');
      } catch { /* already gone */ }
      for (let i = 0; i < 100 && alive(vm.guestPid); i++) await new Promise((r) => setTimeout(r, 20));
    }
    await this.store.update(vmId, (v) => {
      v.state = 'Off';
      v.guestPid = null;
    });
  }

  /** Fault injection: the next `count` merges of this VM fail (a merge failure as Hyper-V users report them). */
  async failNextMerges(vmId: string, count: number): Promise<void> {
    await this.store.update(vmId, (vm) => void (vm.faults.mergeFails = count));
  }

  /** Change what the simulated integration services report. */
  async setBackupService(vmId: string, backup: Partial<HvBackupService>): Promise<void> {
    await this.store.update(vmId, (vm) => void (vm.backup = { ...vm.backup, ...backup }));
  }

  /** Make the VM clustered (its group owned by `cluster.ownerNode`, files on `storage`), or not (null). */
  async setCluster(vmId: string, cluster: HvVm['cluster'], storage: HvVm['storage'] = cluster ? 'CSV' : 'Local'): Promise<void> {
    await this.store.update(vmId, (vm) => {
      vm.cluster = cluster;
      vm.storage = storage;
    });
  }

  /**
   * Live migration of a clustered VM to another node (Move-ClusterVirtualMachineRole -MigrationType Live,
   * simulated): the VM is Migrating while `during` runs (checkpoints refused, as Hyper-V does), then its group
   * is owned by `toNode` and it runs. Its guest process, disks and RCT stay where they are: on the cluster's
   * shared storage, which every simulated node reads (one --sim-root).
   */
  async liveMigrate(vmId: string, toNode: string, during: () => Promise<void> = async () => undefined): Promise<void> {
    const before = this.store.get(vmId);
    if (!before.cluster) throw jobFailed(`VM ${before.name} is not clustered: a live migration here moves a cluster VM role`, { vmId });
    const state = before.state;
    await this.store.update(vmId, (vm) => void (vm.state = 'Migrating'));
    try {
      await during();
    } finally {
      await this.store.update(vmId, (vm) => {
        vm.state = state;
        vm.cluster = { ...vm.cluster!, ownerNode: toNode };
      });
    }
  }

  /** Storage migration (Move-VMStorage, simulated): sim/disk-ops.ts moveStorage. */
  async moveStorage(vmId: string, destDir: string): Promise<void> {
    await moveStorage(this.store, vmId, destDir);
  }

  // ----- the host layer -----

  async listVms(): Promise<HvVm[]> {
    return this.store.ids().flatMap((id) => {
      const vm = this.store.find(id);
      return vm ? [this.#hv(vm)] : [];
    });
  }

  async listCheckpoints(vmId: string): Promise<HvCheckpoint[]> {
    return this.store.get(vmId).checkpoints.map(({ children: _c, rctIds: _r, ...cp }) => cp);
  }

  async listReferencePoints(vmId: string): Promise<HvReferencePoint[]> {
    return this.store.get(vmId).referencePoints;
  }

  async createRecoveryCheckpoint(vmId: string, req: CheckpointRequest): Promise<HvCheckpoint> {
    const vm = this.store.get(vmId);
    if (vm.state === 'Migrating') throw jobFailed(`VM ${vm.name} is migrating: no checkpoint until the migration is over`, { vmId });
    removeOrphans(this.store, vm);
    for (const d of vm.disks) {
      if (d.format !== 'VHDX' && !req.ignoreNonSnapshottableDisks) throw jobFailed(`disk ${d.path} (${d.format}) cannot be checkpointed`, { vmId });
    }
    if (req.consistencyLevel === 'ApplicationConsistent') {
      if (vm.state !== 'Running') throw jobFailed(`an application-consistent checkpoint needs the VM running (it is ${vm.state})`, { vmId });
      if (!vm.backup.enabled || !vm.backup.responding || vm.backup.guestProblems.length > 0) {
        throw jobFailed(`the guest cannot take a VSS snapshot: ${[!vm.backup.enabled ? 'backup integration service disabled' : '', !vm.backup.responding ? 'not responding' : '', ...vm.backup.guestProblems].filter(Boolean).join('; ')}`, { vmId });
      }
    }
    // The guest stops writing for the switch: VSS freeze (tick boundary) or Hyper-V's I/O pause (anywhere).
    const made: string[] = [];
    try {
      return await withGuestPaused(this.store, vm, req.consistencyLevel === 'ApplicationConsistent' ? 'freeze' : 'pause', async () => {
        const id = `Microsoft:${randomUUID().toUpperCase()}`;
        const stamp = `${Date.now().toString(36)}${(this.#seq++).toString(36)}`;
        const frozen: SimCheckpoint['frozen'][number][] = [];
        const children: SimCheckpoint['children'][number][] = [];
        const rctIds: SimCheckpoint['rctIds'][number][] = [];
        for (const d of vm.disks) {
          if (d.format !== 'VHDX') continue;
          const child = join(this.store.dir(vmId), DISK_DIR, `${basename(d.basePath, '.vhdx')}_${id.slice(10)}.avhdx`);
          await writeDisk('vhdx', emptySource(d.virtualSize), child, { parentPath: d.path, blockSize: SIM_BLOCK });
          made.push(child);
          const rctId = `rctsim:${d.diskIdentifier}:${stamp}`;
          appendMarker(d.basePath, rctId);
          frozen.push({ diskIdentifier: d.diskIdentifier, path: d.path });
          children.push({ diskIdentifier: d.diskIdentifier, path: child });
          rctIds.push({ diskIdentifier: d.diskIdentifier, rctId });
        }
        const cp: SimCheckpoint = { id, vmId, name: req.name, kind: 'Recovery', created: new Date().toISOString(), frozen, rctIds, children };
        await this.store.update(vmId, (v) => {
          v.checkpoints.push(cp);
          for (const c of children) v.disks.find((d) => d.diskIdentifier === c.diskIdentifier)!.path = c.path;
        });
        const { children: _c, rctIds: _r, ...out } = cp;
        return out;
      });
    } catch (err) {
      for (const f of made) rmSync(f, { force: true });
      throw err;
    }
  }

  async convertToReferencePoint(checkpointId: string): Promise<HvReferencePoint> {
    const { vm, cp } = this.store.byCheckpoint(checkpointId);
    const rp: HvReferencePoint = { id: `Microsoft:${randomUUID().toUpperCase()}`, vmId: vm.id, name: cp.name, created: new Date().toISOString(), rctIds: cp.rctIds };
    await mergeCheckpoint(this.store, vm, cp, (v) => v.referencePoints.push(rp));
    return rp;
  }

  async removeCheckpoint(checkpointId: string): Promise<void> {
    const { vm, cp } = this.store.byCheckpoint(checkpointId);
    await mergeCheckpoint(this.store, vm, cp, () => undefined);
  }

  async destroyReferencePoint(referencePointId: string): Promise<void> {
    for (const id of this.store.ids()) {
      const vm = this.store.find(id);
      if (vm?.referencePoints.some((r) => r.id === referencePointId)) {
        await this.store.update(id, (v) => void (v.referencePoints = v.referencePoints.filter((r) => r.id !== referencePointId)));
        return;
      }
    }
    throw jobFailed(`no reference point ${referencePointId}`, { referencePointId });
  }

  async getVirtualDiskChanges(path: string, limitId: string, offset: number, length: number): Promise<HvDiskChanges> {
    for (const id of this.store.ids()) {
      const vm = this.store.find(id);
      if (!vm) continue;
      for (const d of vm.disks) {
        const cp = vm.checkpoints.find((c) => c.frozen.some((f) => f.diskIdentifier === d.diskIdentifier && f.path === path));
        if (!cp && d.path !== path) continue;
        const upTo = cp ? cp.rctIds.find((r) => r.diskIdentifier === d.diskIdentifier)!.rctId : null;
        const end = Math.min(offset + length, d.virtualSize);
        const ranges: Array<[number, number]> = [];
        for (const [o, l] of changesBetween(d.basePath, limitId, upTo, d.virtualSize)) {
          const s = Math.max(o, offset);
          const e = Math.min(o + l, end);
          if (e > s) ranges.push([s, e - s]);
        }
        if (ranges.length <= SIM_MAX_RANGES) return { ranges, processedByteLength: end - offset };
        const kept = ranges.slice(0, SIM_MAX_RANGES);
        const last = kept[kept.length - 1]!;
        return { ranges: kept, processedByteLength: last[0] + last[1] - offset };
      }
    }
    throw jobFailed(`${path} is not a disk or frozen checkpoint file of any VM`, { path });
  }

  async saveVm(vmId: string): Promise<void> {
    const vm = this.store.get(vmId);
    if (vm.state === 'Saved') return;
    if (vm.state !== 'Running') throw jobFailed(`cannot save VM ${vm.name}: it is ${vm.state}`, { vmId });
    await guestCall(this.store.dir(vmId), 'save');
    await this.store.update(vmId, (v) => void (v.state = 'Saved'));
  }

  async resumeVm(vmId: string): Promise<void> {
    const vm = this.store.get(vmId);
    if (vm.state === 'Running') return;
    if (vm.state !== 'Saved') throw jobFailed(`cannot resume VM ${vm.name}: it is ${vm.state}`, { vmId });
    await guestCall(this.store.dir(vmId), 'resume');
    await this.store.update(vmId, (v) => void (v.state = 'Running'));
  }

  async getMergeEnabled(vmId: string): Promise<boolean> {
    return this.store.get(vmId).mergeEnabled;
  }

  async setMergeEnabled(vmId: string, enabled: boolean): Promise<void> {
    await this.store.update(vmId, (vm) => void (vm.mergeEnabled = enabled));
  }

  async exportConfiguration(vmId: string, checkpointId: string, destDir: string): Promise<string[]> {
    const vm = this.store.get(vmId);
    const cp = vm.checkpoints.find((c) => c.id === checkpointId);
    if (!cp) throw jobFailed(`no checkpoint ${checkpointId} of VM ${vm.name}`, { vmId, checkpointId });
    mkdirSync(destDir, { recursive: true });
    const out = join(destDir, `${vm.id}${SIM_CONFIG_SUFFIX}`);
    writeFileSync(out, encodeSimConfig({
      simulation: SIM_CONFIG_LABEL, id: vm.id, name: vm.name, generation: vm.generation, configurationVersion: vm.configurationVersion,
      disks: vm.disks.map((d) => ({ controllerType: d.controllerType, controllerNumber: d.controllerNumber, controllerLocation: d.controllerLocation, file: basename(d.basePath), virtualSize: d.virtualSize })),
    }));
    return [out];
  }

  /**
   * Import-VM, simulated: the configuration file is parsed as hostile input (sim/config-file.ts), each disk is
   * looked for by its file name in `vhdDestination` and must be a VHDX of the configured size; the new VM (a
   * new id, state Off) uses the disks where they lie (Hyper-V's -Copy would copy them; here they already are
   * a fresh restore).
   */
  async importVm(configFile: string, vhdDestination: string): Promise<string> {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw jobFailed(`Import-VM: cannot read ${configFile}: ${(err as Error).message}`, { configFile });
    }
    const config = parseSimConfig(text, configFile);
    const id = randomUUID();
    const disks: SimVm['disks'] = [];
    for (const d of config.disks) {
      const src = join(vhdDestination, d.file);
      if (!existsSync(src)) throw jobFailed(`Import-VM: the disk ${src} is missing`, { configFile });
      const img = await openDisk(src);
      try {
        if (img.info.format !== 'vhdx') throw jobFailed(`Import-VM: ${src} is ${img.info.format}, not a VHDX`, { configFile });
        if (img.info.virtualSize !== d.virtualSize) throw jobFailed(`Import-VM: ${src} holds ${img.info.virtualSize} bytes, the configuration says ${d.virtualSize}`, { configFile });
        disks.push({ controllerType: d.controllerType, controllerNumber: d.controllerNumber, controllerLocation: d.controllerLocation, path: src, basePath: src, format: 'VHDX', virtualSize: d.virtualSize, diskIdentifier: String(img.info.extra.page83Data) });
      } finally {
        await img.close();
      }
    }
    mkdirSync(join(this.store.dir(id), DISK_DIR), { recursive: true });
    await this.store.save({
      id, name: config.name, state: 'Off', generation: config.generation, configurationVersion: config.configurationVersion,
      backup: { enabled: true, responding: true, guestProblems: [] }, cluster: null, storage: 'Local', disks, checkpoints: [], referencePoints: [],
      mergeEnabled: true, faults: { mergeFails: 0 }, guestPid: null,
    });
    return id;
  }

  // ----- internals -----

  #hv(vm: SimVm): HvVm {
    const running = vm.state === 'Running' && vm.guestPid !== null && alive(vm.guestPid);
    return {
      id: vm.id, name: vm.name, state: vm.state === 'Running' && !running ? 'Off' : vm.state, generation: vm.generation,
      configurationVersion: vm.configurationVersion, backup: vm.backup, disks: vm.disks, cluster: vm.cluster, storage: vm.storage,
      configurationPath: this.store.dir(vm.id),
    };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
