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
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SvError } from '../../errors/index.js';
import { openDisk } from '../../formats/open.js';
import type { BlockSource } from '../../formats/types.js';
import { writeDisk } from '../../formats/write.js';
import type {
  CheckpointRequest, HvBackupService, HvCheckpoint, HvDiskChanges, HvReferencePoint, HvVm, HyperVHost,
} from './host.js';
import { SimVhdxFile } from './sim/disk-file.js';
import { GuestControl, guestCall, spawnGuest } from './sim/guest-control.js';
import { appendMarker, changesBetween, rctLogPath } from './sim/rct-log.js';
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

function jobFailed(message: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_HYPERV_JOB_FAILED', `simulation: ${message}`, { returnValue: 32768, ...details });
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

  /**
   * Storage migration (Move-VMStorage, simulated): the VM's disks and their RCT logs move to `destDir` while the
   * guest is paused; vm.json then names the new paths. Refused while a checkpoint exists.
   */
  async moveStorage(vmId: string, destDir: string): Promise<void> {
    const vm = this.store.get(vmId);
    if (vm.checkpoints.length > 0) throw jobFailed(`VM ${vm.name} has checkpoints; the simulation moves storage only without`, { vmId });
    mkdirSync(destDir, { recursive: true });
    const ctl = vm.state === 'Running' ? await GuestControl.connect(this.store.dir(vmId)) : null;
    try {
      await ctl?.call('pause');
      const moves = vm.disks.map((d) => ({ from: d.basePath, to: join(destDir, basename(d.basePath)) }));
      for (const m of moves) {
        await moveFile(m.from, m.to);
        if (existsSync(rctLogPath(m.from))) await moveFile(rctLogPath(m.from), rctLogPath(m.to));
      }
      await this.store.update(vmId, (v) => {
        for (const d of v.disks) {
          const m = moves.find((x) => x.from === d.basePath)!;
          d.basePath = m.to;
          d.path = m.to;
        }
      });
    } finally {
      if (ctl) {
        await ctl.call('resume').catch(() => undefined);
        ctl.close();
      }
    }
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
    this.#removeOrphans(vm);
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
    const ctl = vm.state === 'Running' ? await GuestControl.connect(this.store.dir(vmId)) : null;
    const made: string[] = [];
    try {
      await ctl?.call(req.consistencyLevel === 'ApplicationConsistent' ? 'freeze' : 'pause', { timeoutMs: 30_000 });
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
    } catch (err) {
      for (const f of made) rmSync(f, { force: true });
      throw err;
    } finally {
      if (ctl) {
        await ctl.call('resume').catch(() => undefined);
        ctl.close();
      }
    }
  }

  async convertToReferencePoint(checkpointId: string): Promise<HvReferencePoint> {
    const { vm, cp } = this.store.byCheckpoint(checkpointId);
    const rp: HvReferencePoint = { id: `Microsoft:${randomUUID().toUpperCase()}`, vmId: vm.id, name: cp.name, created: new Date().toISOString(), rctIds: cp.rctIds };
    await this.#merge(vm, cp, (v) => v.referencePoints.push(rp));
    return rp;
  }

  async removeCheckpoint(checkpointId: string): Promise<void> {
    const { vm, cp } = this.store.byCheckpoint(checkpointId);
    await this.#merge(vm, cp, () => undefined);
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
    const out = join(destDir, `${vm.id}.sim-vmcx.json`);
    const config = {
      simulation: 'hyperv-sim: a simulated VM configuration, not a Hyper-V .vmcx',
      id: vm.id, name: vm.name, generation: vm.generation, configurationVersion: vm.configurationVersion,
      disks: vm.disks.map((d) => ({ controllerType: d.controllerType, controllerNumber: d.controllerNumber, controllerLocation: d.controllerLocation, file: basename(d.basePath), virtualSize: d.virtualSize })),
    };
    writeFileSync(out, `${JSON.stringify(config, null, 2)}\n`);
    return [out];
  }

  async importVm(configFile: string, vhdDestination: string): Promise<string> {
    const { readFileSync } = await import('node:fs');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { name: string; generation: 1 | 2; configurationVersion: string; disks: Array<{ file: string; controllerLocation: number; virtualSize: number }> };
    const id = randomUUID();
    const dir = this.store.dir(id);
    mkdirSync(join(dir, DISK_DIR), { recursive: true });
    const disks: SimVm['disks'] = [];
    for (const d of config.disks) {
      const src = join(vhdDestination, d.file);
      if (!existsSync(src)) throw jobFailed(`Import-VM: the disk ${src} is missing`, { configFile });
      const img = await openDisk(src);
      disks.push({ controllerType: 'SCSI', controllerNumber: 0, controllerLocation: d.controllerLocation, path: src, basePath: src, format: 'VHDX', virtualSize: img.info.virtualSize, diskIdentifier: String(img.info.extra.page83Data) });
      await img.close();
    }
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

  /**
   * Merge the newest checkpoint's children into the files it froze, with the guest paused (the simulation's
   * merge is offline for the guest; Hyper-V merges live). Order: copy blocks, fsync, vm.json (the commit
   * point: disks back on the parents, checkpoint gone, `then` applied), resume the guest, delete the children.
   * A kill before vm.json leaves the checkpoint as it was (the copy is redone by the next merge).
   */
  async #merge(vm: SimVm, cp: SimCheckpoint, then: (v: SimVm) => void): Promise<void> {
    if (!vm.mergeEnabled) throw jobFailed(`merging is disabled for VM ${vm.name}`, { vmId: vm.id, checkpointId: cp.id });
    if (vm.faults.mergeFails > 0) {
      await this.store.update(vm.id, (v) => void (v.faults.mergeFails -= 1));
      throw jobFailed(`the merge of checkpoint ${cp.name} failed (injected fault)`, { vmId: vm.id, checkpointId: cp.id, errorCode: 32768 });
    }
    for (const c of cp.children) {
      if (!vm.disks.some((d) => d.path === c.path)) throw jobFailed(`checkpoint ${cp.name} is not the newest one of its disks (the simulation merges only the newest)`, { vmId: vm.id });
    }
    const ctl = vm.state === 'Running' ? await GuestControl.connect(this.store.dir(vm.id)) : null;
    try {
      await ctl?.call('pause');
      for (const c of cp.children) {
        const parentPath = cp.frozen.find((f) => f.diskIdentifier === c.diskIdentifier)!.path;
        const child = await SimVhdxFile.open(c.path);
        const parent = await SimVhdxFile.open(parentPath);
        try {
          for (const [off, len] of child.presentRanges()) await parent.write(off, await child.read(off, len));
          await parent.sync();
        } finally {
          await child.close();
          await parent.close();
        }
      }
      await this.store.update(vm.id, (v) => {
        for (const c of cp.children) v.disks.find((d) => d.diskIdentifier === c.diskIdentifier)!.path = cp.frozen.find((f) => f.diskIdentifier === c.diskIdentifier)!.path;
        v.checkpoints = v.checkpoints.filter((x) => x.id !== cp.id);
        then(v);
      });
    } finally {
      if (ctl) {
        await ctl.call('resume').catch(() => undefined);
        ctl.close();
      }
    }
    for (const c of cp.children) rmSync(c.path, { force: true });
  }

  /** .avhdx files vm.json does not name: left by a host process killed before its commit point. */
  #removeOrphans(vm: SimVm): void {
    const named = new Set([...vm.disks.map((d) => d.path), ...vm.checkpoints.flatMap((c) => [...c.children.map((x) => x.path), ...c.frozen.map((x) => x.path)])]);
    const dir = join(this.store.dir(vm.id), DISK_DIR);
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if ((f.endsWith('.avhdx') || f.includes('.tmp-')) && !named.has(p)) rmSync(p, { force: true });
    }
  }
}

/** rename, or copy + remove across file systems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    renameSync(from, to);
  } catch {
    copyFileSync(from, to);
    rmSync(from, { force: true });
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
