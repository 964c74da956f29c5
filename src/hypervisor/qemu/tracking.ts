/**
 * Repair of one disk's tracking bitmaps before a view (and in cleanupLeftovers): afterwards the node has at
 * most one sv-track-* bitmap, enabled and consistent, or none and a reason why the previous reference
 * cannot be trusted.
 *   - inconsistent (QEMU died with the qcow2 open: the in-use flag stayed set): removed, never trusted;
 *   - disabled, beside an enabled one (a view that was neither committed nor aborted): rolled back like
 *     abort(): one transaction enables the disabled one, merges the enabled one into it and removes the
 *     enabled one, so the name the appliance holds stays valid and no change is lost;
 *   - disabled with no enabled one: it stopped recording at some unknown moment: removed;
 *   - several enabled: the first stays, the others are merged into it and removed.
 */
import type { QmpClient } from '../../qemu/qmp.js';
import { bitmapRemove, transaction, transactionAction, type DirtyBitmapInfo } from '../../qemu/qmp-commands.js';
import type { LiveDisk } from './inspect.js';

export interface TrackingRepair {
  readonly current: DirtyBitmapInfo | undefined;
  readonly problem: string | null;
  /** What was changed, for the cleanup report. */
  readonly actions: readonly string[];
}

export async function repairTracking(qmp: QmpClient, disk: Pick<LiveDisk, 'node' | 'bitmaps'>): Promise<TrackingRepair> {
  const node = disk.node;
  const actions: string[] = [];
  let problem: string | null = null;
  for (const b of disk.bitmaps.filter((m) => m.inconsistent)) {
    await bitmapRemove(qmp, { node, name: b.name! });
    actions.push(`removed inconsistent bitmap ${b.name} on ${node}`);
    problem = 'bitmap inconsistent (unclean shutdown)';
  }
  const usable = disk.bitmaps.filter((m) => !m.inconsistent);
  const enabled = usable.filter((m) => m.recording);
  const disabled = usable.filter((m) => !m.recording);
  if (disabled.length > 0 && enabled.length > 0) {
    const keep = disabled[0]!;
    await transaction(qmp, [
      transactionAction('block-dirty-bitmap-enable', { node, name: keep.name }),
      transactionAction('block-dirty-bitmap-merge', { node, target: keep.name, bitmaps: [...enabled, ...disabled.slice(1)].map((b) => b.name) }),
      ...[...enabled, ...disabled.slice(1)].map((b) => transactionAction('block-dirty-bitmap-remove', { node, name: b.name })),
    ]);
    actions.push(`merged ${[...enabled, ...disabled.slice(1)].map((b) => b.name).join(', ')} back into ${keep.name} on ${node}`);
    return { current: { ...keep, recording: true }, problem, actions };
  }
  if (disabled.length > 0) {
    for (const b of disabled) await bitmapRemove(qmp, { node, name: b.name! });
    actions.push(`removed ${disabled.map((b) => b.name).join(', ')} (not recording, nothing to merge into) on ${node}`);
    return { current: undefined, problem: problem ?? `bitmap ${disabled[0]!.name} stopped recording (disabled by someone else)`, actions };
  }
  if (enabled.length > 1) {
    const [keep, ...rest] = enabled as [DirtyBitmapInfo, ...DirtyBitmapInfo[]];
    await transaction(qmp, [
      transactionAction('block-dirty-bitmap-merge', { node, target: keep.name, bitmaps: rest.map((b) => b.name) }),
      ...rest.map((b) => transactionAction('block-dirty-bitmap-remove', { node, name: b.name })),
    ]);
    actions.push(`merged ${rest.map((b) => b.name).join(', ')} into ${keep.name} on ${node}`);
    return { current: keep, problem, actions };
  }
  return { current: enabled[0], problem, actions };
}
