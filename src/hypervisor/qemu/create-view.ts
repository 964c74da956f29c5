/**
 * Taking a point-in-time view of a running (or paused) VM. The sequence, for all disks at once:
 *
 *   prepare (VM running)  repair each disk's tracking bitmaps (tracking.ts); per disk a scratch qcow2 (the
 *                         bytes of an empty one `qemu-img create` made once per size: scratch.ts),
 *                         blockdev-add it, blockdev-add the copy-before-write filter above the disk node
 *                         (on-cbw-error break-snapshot, cbw-timeout);
 *   [online]              guest-ping, guest-fsfreeze-freeze (bounded, freeze.ts);
 *   the instant           `stop`; per disk qom-set drive → filter; ONE `transaction`: per disk
 *                         block-dirty-bitmap-add NEW (granularity = req.blockSize; persistent on qcow2) and
 *                         block-dirty-bitmap-disable OLD; `cont` in finally (pauseMs measured);
 *   [online]              guest-fsfreeze-thaw in finally, confirmed by guest-fsfreeze-status (freezeMs);
 *   publish               nbd-server-start on <stateDir>/nbd-<vm>.sock (once), per disk snapshot-access
 *                         over the filter and block-export-add read-only with OLD as qemu:dirty-bitmap:OLD;
 *                         a raw disk file also gets its scratch node exported with qemu:allocation-depth
 *                         (sv-<token>-cow<i>): the nbd source reads big ranges from the file itself and keeps
 *                         them only where that shows nothing saved (src/sources/nbd.ts).
 *
 * Why the brief `stop` also in online mode: the filter goes in with one qom-set per disk and the bitmap
 * switch is a transaction of its own; with guest I/O stopped, the switch of all devices and all bitmaps is
 * one instant (no write can fall between the point and the bitmap switch, so no change is ever lost). A
 * frozen guest still writes outside its frozen file systems. The pause is a few QMP round trips.
 *
 * A VM found paused (not by us) is not resumed: its point is taken as it is. Everything made is recorded in
 * the view's DiskPlan; any failure releases the view (abort + teardown) before the error is thrown.
 *
 * Resume in every failure path: the state file marks the VM paused by this view before `stop` is sent, and
 * the mark goes only once query-status says the VM is not paused (resumeIfPausedBy: `cont` retried). The
 * instant's `finally` resumes; the failure path of createRunningView resumes again if the mark is still
 * there (a `cont` that failed, a QMP answer lost); a killed driver's successor resumes from the mark
 * (cleanup.ts). test/hypervisor/qemu-view-failures.test.ts fails each QMP command of the sequence in turn.
 */
import { join } from 'node:path';
import { SvError, hasCode } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { blockExportAdd, cont, nbdServerStart, queryStatus, stop, transaction, transactionAction, type TransactionAction } from '../../qemu/qmp-commands.js';
import type { ViewRequest } from '../driver.js';
import { asVmGone } from './errors.js';
import { withFrozenGuest } from './freeze.js';
import type { GuestAgentProbe, LiveVm } from './inspect.js';
import { names, newToken, trackingBitmap } from './names.js';
import { chooseMode } from './online.js';
import type { StateFile } from './state-file.js';
import { makeScratch } from './scratch.js';
import { addCbwFilter, addScratchNode, setDrive } from './steps.js';
import { repairTracking } from './tracking.js';
import { QemuView, type DiskPlan } from './view.js';

export interface CreateContext {
  readonly qmp: QmpClient;
  readonly state: StateFile;
  readonly vm: LiveVm;
  readonly ga: GuestAgentProbe;
  readonly scratchDir: string;
  readonly nbdSocket: string;
  readonly qemuImg: string;
  /** Seconds a copy-before-write operation may take before it breaks the view instead of the guest write. */
  readonly cbwTimeoutS: number;
  readonly onReleased: (token: string) => void;
  readonly onCreated: (token: string) => void;
}

const DEFAULT_GRANULARITY = 64 * 1024;

export function checkGranularity(g: number): number {
  if (!Number.isSafeInteger(g) || g < 512 || g > 2 ** 31 || (g & (g - 1)) !== 0) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `ViewRequest.blockSize ${g}: must be a power of two from 512 bytes to 2 GiB`, { blockSize: g });
  }
  return g;
}

export async function createRunningView(ctx: CreateContext, req: ViewRequest): Promise<QemuView> {
  const { qmp, state, vm } = ctx;
  const granularity = checkGranularity(req.blockSize ?? DEFAULT_GRANULARITY);
  const { online, reasons } = chooseMode(vm, ctx.ga, req);
  const token = newToken();
  const plans: DiskPlan[] = vm.disks.map((disk, index) => {
    const n = names(token, index);
    return {
      index, disk, names: n, scratchPath: join(ctx.scratchDir, n.scratchFile), newBitmap: trackingBitmap(token), oldBitmap: null, oldProblem: null,
      made: { file: false, scratch: false, cbw: false, onFilter: false, snap: false, exported: false, cowExported: false, switched: false, switchSent: false },
    };
  });
  const view = new QemuView({ qmp, state, vmId: vm.id, token, nbdSocket: ctx.nbdSocket, plans, onReleased: ctx.onReleased });
  state.update((s) => {
    s.views[token] = { vmId: vm.id, disks: vm.disks.map((d) => ({ qdev: d.qdev, node: d.node })) };
  });
  ctx.onCreated(token);
  const cancelled = (): void => {
    if (req.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', `VM ${vm.name}: the view was cancelled before its point in time`, { vmId: vm.id });
  };
  try {
    for (const p of plans) {
      cancelled();
      await prepare(ctx, p);
    }
    cancelled();
    const instant = async (): Promise<number> => pointInTime(ctx, plans, granularity, token);
    let pauseMs: number;
    let freezeMs: number | undefined;
    if (online) {
      const frozen = await withFrozenGuest(ctx.ga.socket!, req.freezeTimeoutMs ?? 10_000, {
        onFreezing: () => state.update((s) => void (s.frozen[vm.id] = token)),
        onThawed: () => state.update((s) => void delete s.frozen[vm.id]),
      }, instant);
      pauseMs = frozen.result;
      freezeMs = frozen.freezeMs;
    } else {
      pauseMs = await instant();
    }
    await publish(ctx, view, plans);
    view.setTiming({ consistency: online ? 'application' : 'offline', reasons, pauseMs, ...(freezeMs !== undefined ? { freezeMs } : {}) });
    return view;
  } catch (err) {
    await view.release().catch(() => undefined);
    await resumeIfPausedBy(ctx, token).catch(() => undefined); // the mark stays for cleanup when this fails too
    const coded = asVmGone(err, vm.id, 'createView');
    if (coded instanceof SvError && (coded.code.startsWith('SV_ERR_HYPERVISOR_') || hasCode(coded, 'SV_ERR_CORE_CANCELLED'))) throw coded;
    throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vm.name} (${vm.id}): the point in time failed: ${(err as Error).message}`, { vmId: vm.id }, { cause: err });
  }
}

async function prepare(ctx: CreateContext, p: DiskPlan): Promise<void> {
  const { qmp } = ctx;
  const repair = await repairTracking(qmp, p.disk);
  p.oldBitmap = repair.current?.name ?? null;
  p.oldProblem = repair.problem;
  p.made.file = true;
  await makeScratch(ctx.qemuImg, p.scratchPath, p.disk.virtualSize);
  await addScratchNode(qmp, p.names.scratchNode, p.scratchPath);
  p.made.scratch = true;
  await addCbwFilter(qmp, p.names.cbwNode, p.disk.node, p.names.scratchNode, ctx.cbwTimeoutS);
  p.made.cbw = true;
}

/** stop, switch every device onto its filter, one bitmap transaction, cont. Returns the pause in ms. */
async function pointInTime(ctx: CreateContext, plans: DiskPlan[], granularity: number, token: string): Promise<number> {
  const { qmp, state, vm } = ctx;
  const weStop = vm.runState === 'running';
  if (weStop) state.update((s) => void (s.paused[vm.id] = token));
  const start = performance.now();
  try {
    if (weStop) await stop(qmp);
    for (const p of plans) {
      p.made.onFilter = true; // set first: a failed qom-set may still have switched
      await setDrive(qmp, p.disk.qdev, p.names.cbwNode);
    }
    const actions: TransactionAction[] = [];
    for (const p of plans) {
      actions.push(transactionAction('block-dirty-bitmap-add', { node: p.disk.node, name: p.newBitmap, granularity, persistent: p.disk.tracking.persistent }));
      if (p.oldBitmap) actions.push(transactionAction('block-dirty-bitmap-disable', { node: p.disk.node, name: p.oldBitmap }));
    }
    for (const p of plans) p.made.switchSent = true; // from here QEMU may have switched, answer or not
    if (actions.length) await transaction(qmp, actions);
    for (const p of plans) p.made.switched = true;
  } finally {
    if (weStop) await resumeIfPausedBy(ctx, token);
  }
  return Math.round(performance.now() - start);
}

/**
 * If the state file says view `token` paused the VM: `cont` until query-status no longer says paused (three
 * tries), then drop the mark. Throws SV_ERR_HYPERVISOR_RESUME_FAILED (mark kept) when it cannot, or
 * SV_ERR_HYPERVISOR_VM_GONE (mark kept) when the QMP connection ended meanwhile.
 */
export async function resumeIfPausedBy(ctx: Pick<CreateContext, 'qmp' | 'state' | 'vm'>, token: string): Promise<void> {
  const { qmp, state, vm } = ctx;
  if (state.state.paused[vm.id] !== token) return;
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await cont(qmp); // harmless on a running VM; first, so that the pause is not one round trip longer
      if ((await queryStatus(qmp)).status !== 'paused') {
        state.update((s) => void delete s.paused[vm.id]);
        return;
      }
    } catch (err) {
      last = err;
    }
  }
  // the connection ended: QEMU is gone (nothing of it is paused any more) or our client lost it (the mark stays:
  // the next cleanup resumes the VM if it is still paused)
  if (hasCode(last, 'SV_ERR_QEMU_GONE')) throw asVmGone(last, vm.id, 'the resume after the point in time');
  throw new SvError('SV_ERR_HYPERVISOR_RESUME_FAILED', `VM ${vm.name} (${vm.id}) was paused for a point in time and did not resume: ${(last as Error | undefined)?.message ?? 'query-status still says paused after cont'}`, { vmId: vm.id, view: token }, { cause: last });
}

async function publish(ctx: CreateContext, view: QemuView, plans: DiskPlan[]): Promise<void> {
  const { qmp } = ctx;
  try {
    await nbdServerStart(qmp, ctx.nbdSocket);
  } catch (err) {
    if (!(hasCode(err, 'SV_ERR_QEMU_COMMAND_FAILED') && /already/iu.test(String((err as SvError).details.desc)))) throw err;
  }
  for (const p of plans) {
    await view.addSnapshot(p);
    p.made.exported = true;
    await blockExportAdd(qmp, {
      id: p.names.exportId, nodeName: p.names.snapNode, name: p.names.exportId,
      ...(p.oldBitmap ? { bitmaps: [{ node: p.disk.node, name: p.oldBitmap }] } : {}),
    });
    if (p.disk.format === 'raw' && p.disk.path.startsWith('/')) {
      p.made.cowExported = true;
      await blockExportAdd(qmp, { id: p.names.cowExport, nodeName: p.names.scratchNode, name: p.names.cowExport, allocationDepth: true });
    }
  }
}
