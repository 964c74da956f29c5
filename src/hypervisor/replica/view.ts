/**
 * ReplicaView: the point-in-time view of a replica VM (driver.ts PointInTimeView).
 *
 *   1. the replication state (status.ts) must be 'replicating': 'resynchronising' → SV_ERR_HYPERVISOR_REPLICA_
 *      RESYNCING, 'unknown' → SV_ERR_HYPERVISOR_REPLICA_STATE_UNKNOWN (nothing made);
 *   2. fence (fence.ts): the replica node frozen under an overlay in its qemu-storage-daemon, exported
 *      read-only;
 *   3. the state again: a resynchronisation that started before the fence took hold makes the frozen state
 *      a mix → unfenced, refused as in 1.
 *
 * The point is crash-consistent with the reason "replica": a replica is an image of a running VM's disk at
 * one instant of its replication, never quiesced.
 *
 * Change tracking: a dirty bitmap (sv-track-<token>, not persistent: qsd keeps it in memory) on the replica
 * node records every replicated write. The fence freezes the current one and starts the next (fence.ts);
 * changes() reads the frozen one's extents (qemu/bitmap-changes.ts); commit() removes it (the next one is the
 * next reference); abort() merges the next one back into it. A qsd restarted meanwhile has no bitmap: the
 * change answer says so and the appliance compares digests at the source. release() = abort() unless settled,
 * then unfence (the writes made meanwhile merged back into the replica file).
 */
import { SvError } from '../../errors/index.js';
import { CONTEXT } from '../../nbd/protocol.js';
import type { QmpClient } from '../../qemu/qmp.js';
import type { ChangeAnswer, ChangeReference, PointInTimeView, ReplicaInfo, ViewDisk, ViewRequest, VmDisk } from '../driver.js';
import { bitmapRemove, dirtyBitmaps } from '../../qemu/qmp-commands.js';
import { frozenChanges, rollBack } from '../qemu/bitmap-changes.js';
import { newToken, trackingBitmap } from '../qemu/names.js';
import { deleteExport } from '../qemu/steps.js';
import { repairTracking } from '../qemu/tracking.js';
import type { ReplicaConfig } from './config.js';
import { fence, fenceNames, trackingBitmaps, unfence, type FenceTarget } from './fence.js';

export interface ReplicaViewContext {
  readonly config: ReplicaConfig;
  readonly qsd: QmpClient;
  readonly disk: VmDisk;
  readonly scratchDir: string;
  readonly qemuImg: string;
  /** The replication state now. */
  readonly state: () => Promise<ReplicaInfo>;
  readonly onCreated: (token: string) => void;
  readonly onReleased: (token: string) => void;
}

export const REPLICA_REASON = 'replica';

/** Throws the coded refusal for a replica that is not 'replicating'. */
export function refuseUnlessReplicating(c: ReplicaConfig, info: ReplicaInfo, when: string): void {
  if (info.state === 'replicating') return;
  const details = { vmId: c.id, replica: c.name, state: info.state, ...(info.reason ? { reason: info.reason } : {}) };
  if (info.state === 'resynchronising') {
    throw new SvError('SV_ERR_HYPERVISOR_REPLICA_RESYNCING', `replica VM ${c.name} (${c.id}) is resynchronising${when}: ${info.reason ?? ''}; its disk is a mix of old and new blocks, consistent with no point in time. Back it up once its replication is "replicating" again`, details);
  }
  throw new SvError('SV_ERR_HYPERVISOR_REPLICA_STATE_UNKNOWN', `replica VM ${c.name} (${c.id}): the replication state cannot be established${when}: ${info.reason ?? ''}; without it the replica cannot be known to be consistent`, details);
}

const DEFAULT_GRANULARITY = 64 * 1024;

interface Tracking {
  readonly next: string;
  readonly frozen: string | null;
  readonly problem: string | null;
}

export class ReplicaView implements PointInTimeView {
  readonly vmId: string;
  readonly consistency = 'crash' as const;
  readonly reasons: readonly string[] = [REPLICA_REASON];
  readonly disks: readonly ViewDisk[];
  readonly token: string;
  readonly #target: FenceTarget;
  readonly #tracking: Tracking;
  readonly #nbd: string;
  readonly #onReleased: (token: string) => void;
  #settled: Promise<void> | undefined;
  #released: Promise<void> | undefined;

  private constructor(vmId: string, token: string, target: FenceTarget, tracking: Tracking, nbd: string, disks: ViewDisk[], onReleased: (token: string) => void) {
    this.vmId = vmId;
    this.token = token;
    this.#target = target;
    this.#tracking = tracking;
    this.#nbd = nbd;
    this.disks = disks;
    this.#onReleased = onReleased;
  }

  static async create(ctx: ReplicaViewContext, req: ViewRequest): Promise<ReplicaView> {
    const c = ctx.config;
    if (req.mode === 'online') {
      throw new SvError('SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE', `replica VM ${c.name} (${c.id}): online backup not possible: a replica does not run on this host`, { vmId: c.id, unmet: [{ requirement: 'vm-running' }] });
    }
    refuseUnlessReplicating(c, await ctx.state(), '');
    const token = newToken();
    const target: FenceTarget = { qsd: ctx.qsd, node: c.node, scratchDir: ctx.scratchDir };
    ctx.onCreated(token);
    let exportName: string;
    let tracking: Tracking;
    try {
      if (req.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', `replica VM ${c.name}: the view was cancelled before its point in time`, { vmId: c.id });
      const repair = await repairTracking(ctx.qsd, { node: c.node, bitmaps: await trackingBitmaps(ctx.qsd, c.node) });
      tracking = { next: trackingBitmap(token), frozen: repair.current?.name ?? null, problem: repair.problem };
      exportName = await fence(target, token, ctx.disk.virtualSize, ctx.qemuImg, { next: tracking.next, frozen: tracking.frozen, granularity: req.blockSize ?? DEFAULT_GRANULARITY });
      try {
        refuseUnlessReplicating(c, await ctx.state(), ' (it changed while the replica was being fenced)');
      } catch (err) {
        await new ReplicaView(c.id, token, target, tracking, c.nbd, [], () => undefined).release();
        throw err;
      }
    } catch (err) {
      ctx.onReleased(token);
      throw err;
    }
    const disk: ViewDisk = {
      index: 0, key: ctx.disk.key, name: ctx.disk.key, virtualSize: ctx.disk.virtualSize, identity: ctx.disk.identity,
      source: { kind: 'nbd', socket: c.nbd, exportName, name: ctx.disk.key, ...(tracking.frozen ? { bitmapContext: CONTEXT.QEMU_DIRTY_BITMAP_PREFIX + tracking.frozen } : {}) },
      nextReference: { id: tracking.next, diskIdentity: ctx.disk.identity, virtualSize: ctx.disk.virtualSize },
    };
    return new ReplicaView(c.id, token, target, tracking, c.nbd, [disk], ctx.onReleased);
  }

  async changes(disk: number, previous: ChangeReference | null): Promise<ChangeAnswer> {
    if (this.#released) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.token} of replica VM ${this.vmId} was released`, { vmId: this.vmId });
    const d = this.disks[disk];
    if (!d) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.token} has no disk ${disk}`, { vmId: this.vmId, disk });
    return frozenChanges({
      qmp: this.#target.qsd, node: this.#target.node, identity: d.identity, virtualSize: d.virtualSize, persistent: false,
      bitmap: this.#tracking.frozen, problem: this.#tracking.problem, nbdSocket: this.#nbd, exportName: fenceNames(this.token).exportId,
    }, previous);
  }

  /** A replica is a disk image kept by a storage daemon, not a VM: it has no configuration of its own. */
  async configuration(): Promise<never> {
    throw new SvError('SV_ERR_HYPERVISOR_NO_CONFIGURATION', `replica VM ${this.vmId}: a replica's storage daemon holds its disk only, no VM configuration (back up the primary for that)`, { vmId: this.vmId });
  }

  /** The point is safe: the frozen bitmap goes (the next one holds every change since this point). */
  commit(): Promise<void> {
    return (this.#settled ??= (async () => {
      const { qsd, node } = this.#target;
      await deleteExport(qsd, fenceNames(this.token).exportId); // an exported bitmap is busy
      if (this.#tracking.frozen) await bitmapRemove(qsd, { node, name: this.#tracking.frozen }).catch(() => undefined);
    })());
  }

  /** Roll tracking back: the frozen bitmap records again, with every change since the last committed point. */
  abort(): Promise<void> {
    return (this.#settled ??= (async () => {
      const { qsd, node } = this.#target;
      await deleteExport(qsd, fenceNames(this.token).exportId);
      const { frozen, next } = this.#tracking;
      if (frozen && (await dirtyBitmaps(qsd, node)).some((b) => b.name === next)) await rollBack(qsd, node, frozen, next);
    })());
  }

  release(): Promise<void> {
    return (this.#released ??= this.abort().catch(() => undefined).then(() => unfence(this.#target, this.token)).finally(() => this.#onReleased(this.token)));
  }
}
