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
 * one instant of its replication, never quiesced. No change tracking is kept on the replica: changes()
 * answers "not usable" (the appliance compares digests at the source, and only changed blocks travel), and
 * no next reference is handed out; commit/abort have nothing to do. release() unfences (merges the writes
 * made meanwhile back into the replica file).
 */
import { SvError } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import type { ChangeAnswer, PointInTimeView, ReplicaInfo, ViewDisk, ViewRequest, VmDisk } from '../driver.js';
import { newToken } from '../qemu/names.js';
import type { ReplicaConfig } from './config.js';
import { fence, unfence, type FenceTarget } from './fence.js';

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

export class ReplicaView implements PointInTimeView {
  readonly vmId: string;
  readonly consistency = 'crash' as const;
  readonly reasons: readonly string[] = [REPLICA_REASON];
  readonly disks: readonly ViewDisk[];
  readonly token: string;
  readonly #target: FenceTarget;
  readonly #onReleased: (token: string) => void;
  #released: Promise<void> | undefined;

  private constructor(vmId: string, token: string, target: FenceTarget, disks: ViewDisk[], onReleased: (token: string) => void) {
    this.vmId = vmId;
    this.token = token;
    this.#target = target;
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
    try {
      if (req.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', `replica VM ${c.name}: the view was cancelled before its point in time`, { vmId: c.id });
      exportName = await fence(target, token, ctx.disk.virtualSize, ctx.qemuImg);
      try {
        refuseUnlessReplicating(c, await ctx.state(), ' (it changed while the replica was being fenced)');
      } catch (err) {
        await unfence(target, token);
        throw err;
      }
    } catch (err) {
      ctx.onReleased(token);
      throw err;
    }
    const disk: ViewDisk = {
      index: 0, key: ctx.disk.key, name: ctx.disk.key, virtualSize: ctx.disk.virtualSize, identity: ctx.disk.identity,
      source: { kind: 'nbd', socket: c.nbd, exportName, name: ctx.disk.key }, nextReference: null,
    };
    return new ReplicaView(c.id, token, target, [disk], ctx.onReleased);
  }

  async changes(disk: number): Promise<ChangeAnswer> {
    if (this.#released) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.token} of replica VM ${this.vmId} was released`, { vmId: this.vmId });
    if (!this.disks[disk]) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.token} has no disk ${disk}`, { vmId: this.vmId, disk });
    return { usable: false, reason: 'replica: no change tracking is kept on a replica (digest comparison at the source)' };
  }

  /** A replica is a disk image kept by a storage daemon, not a VM: it has no configuration of its own. */
  async configuration(): Promise<never> {
    throw new SvError('SV_ERR_HYPERVISOR_NO_CONFIGURATION', `replica VM ${this.vmId}: a replica's storage daemon holds its disk only, no VM configuration (back up the primary for that)`, { vmId: this.vmId });
  }

  async commit(): Promise<void> {}

  async abort(): Promise<void> {}

  release(): Promise<void> {
    return (this.#released ??= unfence(this.#target, this.token).finally(() => this.#onReleased(this.token)));
  }
}
