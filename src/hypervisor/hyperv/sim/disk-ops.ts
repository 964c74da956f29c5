/**
 * SIMULATION (SimulatedHyperVHost): the operations on a simulated VM's disk files: merging a checkpoint's
 * .avhdx children into their parents, removing orphaned children, moving the disks (storage migration). Each
 * pauses the simulated guest while it works and makes vm.json its commit point (store.ts).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SvError } from '../../../errors/index.js';
import { SimVhdxFile } from './disk-file.js';
import { GuestControl } from './guest-control.js';
import { rctLogPath } from './rct-log.js';
import { DISK_DIR, type SimCheckpoint, type SimStore, type SimVm } from './store.js';

export function jobFailed(message: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_HYPERV_JOB_FAILED', `simulation: ${message}`, { returnValue: 32768, ...details });
}

/** Run `fn` with the VM's guest paused (Hyper-V's I/O pause), resumed whatever happens; no guest when not running. */
export async function withGuestPaused<T>(store: SimStore, vm: SimVm, op: 'pause' | 'freeze', fn: () => Promise<T>): Promise<T> {
  const ctl = vm.state === 'Running' ? await GuestControl.connect(store.dir(vm.id)) : null;
  try {
    await ctl?.call(op, { timeoutMs: 30_000 });
    return await fn();
  } finally {
    if (ctl) {
      await ctl.call('resume').catch(() => undefined);
      ctl.close();
    }
  }
}

/**
 * Merge the newest checkpoint's children into the files it froze, with the guest paused (the simulation's
 * merge is offline for the guest; Hyper-V merges live). Order: copy blocks, fsync, vm.json (the commit
 * point: disks back on the parents, checkpoint gone, `then` applied), resume the guest, delete the children.
 * A kill before vm.json leaves the checkpoint as it was (the copy is redone by the next merge).
 */
export async function mergeCheckpoint(store: SimStore, vm: SimVm, cp: SimCheckpoint, then: (v: SimVm) => void): Promise<void> {
  if (!vm.mergeEnabled) throw jobFailed(`merging is disabled for VM ${vm.name}`, { vmId: vm.id, checkpointId: cp.id });
  if (vm.faults.mergeFails > 0) {
    await store.update(vm.id, (v) => void (v.faults.mergeFails -= 1));
    throw jobFailed(`the merge of checkpoint ${cp.name} failed (injected fault)`, { vmId: vm.id, checkpointId: cp.id, errorCode: 32768 });
  }
  for (const c of cp.children) {
    if (!vm.disks.some((d) => d.path === c.path)) throw jobFailed(`checkpoint ${cp.name} is not the newest one of its disks (the simulation merges only the newest)`, { vmId: vm.id });
  }
  await withGuestPaused(store, vm, 'pause', async () => {
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
    await store.update(vm.id, (v) => {
      for (const c of cp.children) v.disks.find((d) => d.diskIdentifier === c.diskIdentifier)!.path = cp.frozen.find((f) => f.diskIdentifier === c.diskIdentifier)!.path;
      v.checkpoints = v.checkpoints.filter((x) => x.id !== cp.id);
      then(v);
    });
  });
  for (const c of cp.children) rmSync(c.path, { force: true });
}

/** .avhdx files vm.json does not name: left by a host process killed before its commit point. */
export function removeOrphans(store: SimStore, vm: SimVm): void {
  const named = new Set([...vm.disks.map((d) => d.path), ...vm.checkpoints.flatMap((c) => [...c.children.map((x) => x.path), ...c.frozen.map((x) => x.path)])]);
  const dir = join(store.dir(vm.id), DISK_DIR);
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if ((f.endsWith('.avhdx') || f.includes('.tmp-')) && !named.has(p)) rmSync(p, { force: true });
  }
}

/**
 * Storage migration (Move-VMStorage, simulated): the VM's disks and their RCT logs move to `destDir` while the
 * guest is paused; vm.json then names the new paths. Refused while a checkpoint exists.
 */
export async function moveStorage(store: SimStore, vmId: string, destDir: string): Promise<void> {
  const vm = store.get(vmId);
  if (vm.checkpoints.length > 0) throw jobFailed(`VM ${vm.name} has checkpoints; the simulation moves storage only without`, { vmId });
  mkdirSync(destDir, { recursive: true });
  await withGuestPaused(store, vm, 'pause', async () => {
    const moves = vm.disks.map((d) => ({ from: d.basePath, to: join(destDir, basename(d.basePath)) }));
    for (const m of moves) {
      await moveFile(m.from, m.to);
      if (existsSync(rctLogPath(m.from))) await moveFile(rctLogPath(m.from), rctLogPath(m.to));
    }
    await store.update(vmId, (v) => {
      for (const d of v.disks) {
        const m = moves.find((x) => x.from === d.basePath)!;
        d.basePath = m.to;
        d.path = m.to;
      }
    });
  });
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
