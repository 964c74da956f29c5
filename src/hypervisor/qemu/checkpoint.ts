/**
 * A point in time by checkpoint and merge (Hyper-V's model, used for VMs whose disks lie on an SMB share:
 * src/smb/). The base file stops changing and is read in place, by the file server's agent:
 *
 *   prepare   per disk: repair its tracking bitmaps (tracking.ts); record the overlay in the state file
 *             (views[token].overlays) BEFORE anything exists; `qemu-img create` a qcow2 overlay beside the
 *             disk on the share (`sv-<token>-ovl<i>.qcow2`, backing = the disk file), blockdev-add it
 *             (`sv-<token>-ovl<i>`, backing null);
 *   [online]  guest-ping, guest-fsfreeze-freeze (bounded, freeze.ts);
 *   instant   ONE `transaction`, all disks: block-dirty-bitmap-add NEW on the disk node, -disable OLD,
 *             `blockdev-snapshot` node=disk overlay=ours. From here the guest writes into the overlay; the
 *             base file is read-only and consistent. No `stop` is needed: the transaction is atomic.
 *   [online]  thaw in finally (confirmed);
 *   publish   the base node exported read-only over NBD with OLD (for changes(); the data is read as a
 *             `file`: the disk's own path, by the file server's agent when it is on a share).
 *
 * The view (view.ts, `overlay` plans) releases by merging back (merge.ts: block-commit of the active layer,
 * or qemu-img commit when QEMU is gone) and only then deleting the overlay node and file. A killed agent's
 * successor finishes the merge from the state file's record (cleanup.ts, driver.ts): never a growing chain.
 * Only raw disks: the file server reads the base with the project's readers (raw, VHD, VHDX), not qcow2.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { SvError, hasCode } from '../../errors/index.js';
import { blockExportAdd, blockdevAdd, nbdServerStart, transaction, transactionAction, type TransactionAction } from '../../qemu/qmp-commands.js';
import type { ViewRequest } from '../driver.js';
import type { CreateContext } from './create-view.js';
import { asVmGone } from './errors.js';
import { withFrozenGuest } from './freeze.js';
import { names, newToken, trackingBitmap } from './names.js';
import { chooseMode } from './online.js';
import { repairTracking } from './tracking.js';
import { QemuView, type DiskPlan } from './view.js';

const run = promisify(execFile);

export const overlayNames = (token: string, i: number) => ({
  node: `sv-${token}-ovl${i}`,
  job: `sv-${token}-mrg${i}`,
  file: `sv-${token}-ovl${i}.qcow2`,
});

export async function createCheckpointView(ctx: CreateContext, req: ViewRequest, granularity: number): Promise<QemuView> {
  const { qmp, state, vm } = ctx;
  const bad = vm.disks.find((d) => d.format !== 'raw');
  if (bad) throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vm.name} (${vm.id}): disk ${bad.key} on a file share is ${bad.format}; a checkpoint view reads raw disks only`, { vmId: vm.id, disk: bad.key, format: bad.format });
  const { online, reasons } = chooseMode(vm, ctx.ga, req);
  const token = newToken();
  const plans: DiskPlan[] = vm.disks.map((disk, index) => {
    const o = overlayNames(token, index);
    return {
      index, disk, names: names(token, index), scratchPath: '', newBitmap: trackingBitmap(token), oldBitmap: null, oldProblem: null,
      made: { file: false, scratch: false, cbw: false, onFilter: false, snap: false, exported: false, cowExported: false, switched: false, switchSent: false },
      overlay: { node: o.node, jobId: o.job, path: join(dirname(disk.path), o.file), file: false, added: false, merged: false },
    };
  });
  const view = new QemuView({ qmp, state, vmId: vm.id, token, nbdSocket: ctx.nbdSocket, plans, onReleased: ctx.onReleased, qemuImg: ctx.qemuImg });
  state.update((s) => {
    s.views[token] = {
      vmId: vm.id, disks: vm.disks.map((d) => ({ qdev: d.qdev, node: d.node })),
      overlays: plans.map((p) => ({ qdev: p.disk.qdev, baseNode: p.disk.node, overlayNode: p.overlay!.node, jobId: p.overlay!.jobId, path: p.overlay!.path })),
    };
  });
  ctx.onCreated(token);
  try {
    for (const p of plans) {
      if (req.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', `VM ${vm.name}: the view was cancelled before its point in time`, { vmId: vm.id });
      const repair = await repairTracking(qmp, p.disk);
      p.oldBitmap = repair.current?.name ?? null;
      p.oldProblem = repair.problem;
      p.overlay!.file = true;
      await run(ctx.qemuImg, ['create', '-q', '-f', 'qcow2', '-b', p.disk.path, '-F', 'raw', p.overlay!.path, String(p.disk.virtualSize)]);
      await blockdevAdd(qmp, { driver: 'qcow2', 'node-name': p.overlay!.node, file: { driver: 'file', filename: p.overlay!.path }, backing: null });
      p.overlay!.added = true;
    }
    const instant = async (): Promise<void> => {
      const actions: TransactionAction[] = [];
      for (const p of plans) {
        actions.push(transactionAction('block-dirty-bitmap-add', { node: p.disk.node, name: p.newBitmap, granularity, persistent: false }));
        if (p.oldBitmap) actions.push(transactionAction('block-dirty-bitmap-disable', { node: p.disk.node, name: p.oldBitmap }));
        actions.push(transactionAction('blockdev-snapshot', { node: p.disk.node, overlay: p.overlay!.node }));
      }
      for (const p of plans) p.made.switchSent = true; // from here QEMU may have switched, answer or not
      await transaction(qmp, actions);
      for (const p of plans) p.made.switched = true;
    };
    let freezeMs: number | undefined;
    if (online) {
      const frozen = await withFrozenGuest(ctx.ga.socket!, req.freezeTimeoutMs ?? 10_000, {
        onFreezing: () => state.update((s) => void (s.frozen[vm.id] = token)),
        onThawed: () => state.update((s) => void delete s.frozen[vm.id]),
      }, instant);
      freezeMs = frozen.freezeMs;
    } else {
      await instant();
    }
    try {
      await nbdServerStart(qmp, ctx.nbdSocket);
    } catch (err) {
      if (!(hasCode(err, 'SV_ERR_QEMU_COMMAND_FAILED') && /already/iu.test(String((err as SvError).details.desc)))) throw err;
    }
    for (const p of plans) {
      p.made.exported = true;
      await blockExportAdd(qmp, { id: p.names.exportId, nodeName: p.disk.node, name: p.names.exportId, ...(p.oldBitmap ? { bitmaps: [{ node: p.disk.node, name: p.oldBitmap }] } : {}) });
    }
    view.setTiming({ consistency: online ? 'application' : 'crash', reasons: online ? reasons : [...reasons, 'checkpoint taken without quiescing the guest'], pauseMs: 0, ...(freezeMs !== undefined ? { freezeMs } : {}) });
    return view;
  } catch (err) {
    await view.release().catch(() => undefined);
    const coded = asVmGone(err, vm.id, 'createView');
    if (coded instanceof SvError && (coded.code.startsWith('SV_ERR_HYPERVISOR_') || hasCode(coded, 'SV_ERR_CORE_CANCELLED'))) throw coded;
    throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vm.name} (${vm.id}): the checkpoint failed: ${(err as Error).message}`, { vmId: vm.id }, { cause: err });
  }
}
