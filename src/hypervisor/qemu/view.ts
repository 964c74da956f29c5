/**
 * A point-in-time view of a running VM's disks (see create-view.ts for how it is taken). It owns, per disk,
 * a scratch file and node, a copy-before-write filter the device sits on, a snapshot-access node and its
 * NBD export (and, for a raw disk file, an export of the scratch node for direct reads), plus the frozen (disabled) tracking bitmap of the previous point and the new one that records
 * from this point on.
 *
 * Tracking (per disk; `old` = the bitmap frozen by this view, `new` = the one it started):
 *   changes()  old's dirty extents over NBD, once `previous` is proved to be old (same name, identity, size,
 *              old was recording until the point and is not inconsistent); otherwise {usable:false, reason}.
 *   commit()   remove old: new now holds every change since this point, and is the next reference.
 *   abort()    one transaction: enable old, merge new into old, remove new. Old is again the tracking
 *              bitmap and holds every change since the LAST COMMITTED point, under the very name the
 *              appliance holds as its reference (so the next run still has a usable bitmap).
 *   release()  abort() unless commit()/abort() ran, then the teardown (steps.ts). All idempotent.
 */
import { CONTEXT } from '../../nbd/protocol.js';
import { SvError, hasCode } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { bitmapRemove, dirtyBitmaps } from '../../qemu/qmp-commands.js';
import type { ChangeAnswer, ChangeReference, Consistency, PointInTimeView, ViewDisk } from '../driver.js';
import type { VmConfiguration } from '../config.js';
import { frozenChanges, rollBack } from './bitmap-changes.js';
import { captureQemuConfig } from './config.js';
import { asVmGone } from './errors.js';
import type { LiveDisk } from './inspect.js';
import type { names } from './names.js';
import type { StateFile } from './state-file.js';
import { mergeOffline, mergeOnline } from './merge.js';
import { addSnapshotAccess, allSteps, deleteExport, deleteFile, deleteNode, setDriveBack } from './steps.js';

export interface DiskPlan {
  readonly index: number;
  readonly disk: LiveDisk;
  readonly names: ReturnType<typeof names>;
  readonly scratchPath: string;
  readonly newBitmap: string;
  /** The tracking bitmap this view froze; null when there was none to trust (see oldProblem). */
  oldBitmap: string | null;
  oldProblem: string | null;
  /** What exists so far (teardown undoes exactly these). */
  made: { file: boolean; scratch: boolean; cbw: boolean; onFilter: boolean; snap: boolean; exported: boolean; cowExported: boolean; switched: boolean; switchSent: boolean };
  /** A checkpoint view's overlay (checkpoint.ts) instead of the copy-before-write filter: its node, merge job, file. */
  overlay?: { readonly node: string; readonly jobId: string; readonly path: string; file: boolean; added: boolean; merged: boolean };
}

export interface ViewContext {
  readonly qmp: QmpClient;
  readonly state: StateFile;
  readonly vmId: string;
  readonly token: string;
  readonly nbdSocket: string;
  readonly plans: readonly DiskPlan[];
  readonly onReleased: (token: string) => void;
  /** qemu-img, for the offline merge of a checkpoint view whose QEMU is gone. */
  readonly qemuImg?: string;
}

export interface ViewTiming {
  consistency: Consistency;
  reasons: string[];
  pauseMs?: number;
  freezeMs?: number;
}

export class QemuView implements PointInTimeView {
  readonly vmId: string;
  consistency: Consistency = 'crash';
  reasons: readonly string[] = [];
  pauseMs?: number;
  freezeMs?: number;
  readonly #ctx: ViewContext;
  #settled: 'commit' | 'abort' | null = null;
  #settling: Promise<void> | null = null;
  #released: Promise<void> | null = null;
  #config: Promise<VmConfiguration> | undefined;

  constructor(ctx: ViewContext) {
    this.#ctx = ctx;
    this.vmId = ctx.vmId;
  }

  get token(): string {
    return this.#ctx.token;
  }

  setTiming(t: ViewTiming): void {
    this.consistency = t.consistency;
    this.reasons = t.reasons;
    if (t.pauseMs !== undefined) this.pauseMs = t.pauseMs;
    if (t.freezeMs !== undefined) this.freezeMs = t.freezeMs;
  }

  get disks(): readonly ViewDisk[] {
    return this.#ctx.plans.map((p) => ({
      index: p.index,
      key: p.disk.key,
      name: p.disk.key,
      virtualSize: p.disk.virtualSize,
      identity: p.disk.identity,
      // a checkpoint view's disk is its base file itself, frozen while the guest writes into the overlay
      source: p.overlay ? { kind: 'file', path: p.disk.path, format: 'raw' } : {
        kind: 'nbd', socket: this.#ctx.nbdSocket, exportName: p.names.exportId, name: p.disk.key,
        ...(p.oldBitmap ? { bitmapContext: CONTEXT.QEMU_DIRTY_BITMAP_PREFIX + p.oldBitmap } : {}),
        ...(p.made.cowExported ? { direct: { path: p.disk.path, cowExport: p.names.cowExport } } : {}),
      },
      nextReference: { id: p.newBitmap, diskIdentity: p.disk.identity, virtualSize: p.disk.virtualSize },
    }));
  }

  async changes(disk: number, previous: ChangeReference | null): Promise<ChangeAnswer> {
    const p = this.#plan(disk);
    try {
      return await frozenChanges({
        qmp: this.#ctx.qmp, node: p.disk.node, identity: p.disk.identity, virtualSize: p.disk.virtualSize, persistent: p.disk.tracking.persistent,
        bitmap: p.oldBitmap, problem: p.oldProblem, nbdSocket: this.#ctx.nbdSocket, exportName: p.names.exportId,
      }, previous);
    } catch (err) {
      throw asVmGone(err, this.vmId, 'changes');
    }
  }

  /** The machine as QMP describes it (config.ts), asked once, right after the point in time. */
  configuration(): Promise<VmConfiguration> {
    this.#plan(0);
    this.#config ??= captureQemuConfig(this.#ctx.qmp, this.vmId).catch((err: unknown) => {
      this.#config = undefined;
      throw asVmGone(err, this.vmId, 'configuration');
    });
    return this.#config;
  }

  commit(): Promise<void> {
    return this.#settle('commit', async (qmp, p) => {
      await this.#unexport(p); // an exported bitmap is busy: the export goes first
      if (p.oldBitmap) await bitmapRemove(qmp, { node: p.disk.node, name: p.oldBitmap }).catch(ignoreMissingBitmap);
    });
  }

  abort(): Promise<void> {
    return this.#settle('abort', async (qmp, p) => {
      await this.#unexport(p);
      if (!p.oldBitmap) return;
      const node = p.disk.node;
      // The bitmap transaction was sent but its answer never came: QEMU may have run it (then NEW exists).
      if (!p.made.switched && !(p.made.switchSent && (await dirtyBitmaps(qmp, node)).some((b) => b.name === p.newBitmap))) return;
      await rollBack(qmp, node, p.oldBitmap, p.newBitmap);
    });
  }

  release(): Promise<void> {
    return (this.#released ??= this.#release().catch((err: unknown) => {
      this.#released = null; // a failed release may be retried
      throw err;
    }));
  }

  async #release(): Promise<void> {
    const { qmp, plans, state, token } = this.#ctx;
    const errors: Array<{ what: string; error: unknown }> = [];
    const gone = (): boolean => qmp.ended !== undefined;
    if (!this.#settled) await this.abort().catch((error: unknown) => errors.push({ what: 'abort', error }));
    const steps: Array<[string, () => Promise<void> | void]> = [];
    for (const p of plans) {
      const n = p.names;
      const inQemu = (what: string, run: () => Promise<void>): void => {
        steps.push([what, async () => {
          if (!gone()) await run();
        }]);
      };
      if (p.made.exported) inQemu(`export ${n.exportId}`, () => deleteExport(qmp, n.exportId));
      if (p.made.cowExported) inQemu(`export ${n.cowExport}`, () => deleteExport(qmp, n.cowExport));
      if (p.overlay) {
        steps.push(...this.#overlaySteps(p, p.overlay, gone));
        continue;
      }
      if (p.made.snap) inQemu(`node ${n.snapNode}`, () => deleteNode(qmp, n.snapNode));
      if (p.made.onFilter) inQemu(`device ${p.disk.key} back on ${p.disk.node}`, () => setDriveBack(qmp, p.disk.qdev, n.cbwNode, p.disk.node));
      if (p.made.cbw) inQemu(`node ${n.cbwNode}`, () => deleteNode(qmp, n.cbwNode));
      if (p.made.scratch) inQemu(`node ${n.scratchNode}`, () => deleteNode(qmp, n.scratchNode));
      if (p.made.file) steps.push([`file ${p.scratchPath}`, () => deleteFile(p.scratchPath)]);
    }
    await allSteps(steps, errors).catch(() => undefined);
    // a checkpoint overlay not merged yet keeps its record: the next start merges it (never a lost or growing chain)
    const unmerged = plans.some((p) => p.overlay?.file);
    if ((errors.length === 0 || gone()) && !unmerged) state.update((s) => void delete s.views[token]);
    this.#ctx.onReleased(token);
    // A VM whose QEMU is gone holds nothing of ours any more: its release is complete once the files are gone.
    const real = errors.filter((e) => !(gone() && hasCode(e.error, 'SV_ERR_QEMU_GONE', 'SV_ERR_HYPERVISOR_VM_GONE')));
    if (real.length) throw asVmGone(real[0]!.error, this.vmId, 'release');
  }

  /**
   * A checkpoint view's teardown of one disk: merge back (online, or offline once QEMU is gone), then the
   * overlay node, then the overlay file: the file goes only once nothing of the guest's is left in it alone.
   */
  #overlaySteps(p: DiskPlan, o: NonNullable<DiskPlan['overlay']>, gone: () => boolean): Array<[string, () => Promise<void>]> {
    const { qmp } = this.#ctx;
    const ref = { qdev: p.disk.qdev, overlayNode: o.node, baseNode: p.disk.node, jobId: o.jobId, path: o.path };
    return [
      [`merge of ${o.path}`, async () => {
        if (!o.file || o.merged) return;
        if (!gone()) await mergeOnline(qmp, ref);
        else await mergeOffline(o.path, this.#ctx.qemuImg ?? 'qemu-img');
        o.merged = true;
      }],
      [`node ${o.node}`, async () => {
        if (o.added && !gone()) await deleteNode(qmp, o.node);
        o.added = false;
      }],
      [`file ${o.path}`, async () => {
        if (o.file && o.merged) deleteFile(o.path);
        if (o.merged) o.file = false;
      }],
    ];
  }

  /** Add the snapshot-access node over disk i's filter (after the point in time). */
  async addSnapshot(p: DiskPlan): Promise<void> {
    await addSnapshotAccess(this.#ctx.qmp, p.names.snapNode, p.names.cbwNode);
    p.made.snap = true;
  }

  async #unexport(p: DiskPlan): Promise<void> {
    if (!p.made.exported) return;
    await deleteExport(this.#ctx.qmp, p.names.exportId);
    p.made.exported = false;
  }

  #plan(disk: number): DiskPlan {
    if (this.#released) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.#ctx.token} of VM ${this.vmId} was released`, { vmId: this.vmId });
    const p = this.#ctx.plans[disk];
    if (!p) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.#ctx.token} has no disk ${disk} (it has ${this.#ctx.plans.length})`, { vmId: this.vmId, disk });
    return p;
  }

  #settle(kind: 'commit' | 'abort', each: (qmp: QmpClient, p: DiskPlan) => Promise<void>): Promise<void> {
    if (this.#settled || this.#settling) {
      return this.#settling ?? Promise.resolve();
    }
    this.#settling = (async () => {
      try {
        for (const p of this.#ctx.plans) await each(this.#ctx.qmp, p);
        this.#settled = kind;
      } catch (err) {
        throw asVmGone(err, this.vmId, kind);
      } finally {
        this.#settling = null;
      }
    })();
    return this.#settling;
  }
}

function ignoreMissingBitmap(err: unknown): void {
  if (hasCode(err, 'SV_ERR_QEMU_COMMAND_FAILED') && /not found/iu.test(String((err as SvError).details.desc))) return;
  throw err;
}
