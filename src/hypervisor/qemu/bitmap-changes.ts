/**
 * A view's change answer from a frozen tracking bitmap, and the roll-back of a bitmap switch: shared by the
 * QEMU driver's running-VM views (view.ts) and the replica views (replica/view.ts, the bitmap on the replica
 * node inside qemu-storage-daemon).
 *
 *   frozenChanges  `previous` must be the frozen bitmap (same name, disk identity and size, still there, not
 *                  inconsistent); then its dirty extents, read over NBD from the view's export, which carries
 *                  it as qemu:dirty-bitmap:<name>. Otherwise {usable: false, reason}.
 *   rollBack       one transaction: enable the frozen bitmap, merge the new one into it, remove the new one:
 *                  the frozen one again holds every change since the last committed point, under the name the
 *                  appliance holds.
 */
import { NbdClient } from '../../nbd/client.js';
import { dirtyRanges } from '../../nbd/extents.js';
import { CONTEXT } from '../../nbd/protocol.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { dirtyBitmaps, transaction, transactionAction } from '../../qemu/qmp-commands.js';
import type { ChangeAnswer, ChangeReference } from '../driver.js';

export interface FrozenBitmap {
  readonly qmp: QmpClient;
  readonly node: string;
  readonly identity: string;
  readonly virtualSize: number;
  /** Whether the bitmap survives a restart of QEMU (qcow2): only for the reason given when it is missing. */
  readonly persistent: boolean;
  /** The bitmap the view froze, or null (with `problem` when it was there but untrustworthy). */
  readonly bitmap: string | null;
  readonly problem: string | null;
  readonly nbdSocket: string;
  readonly exportName: string;
}

export async function frozenChanges(f: FrozenBitmap, previous: ChangeReference | null): Promise<ChangeAnswer> {
  if (!previous) return { usable: false, reason: 'no previous reference' };
  if (previous.diskIdentity !== f.identity) return { usable: false, reason: identityChange(previous.diskIdentity, f.identity, f.bitmap === previous.id) };
  if (previous.virtualSize !== f.virtualSize) return { usable: false, reason: `disk resized (${previous.virtualSize} → ${f.virtualSize} bytes)` };
  if (f.problem) return { usable: false, reason: f.problem };
  if (f.bitmap === null) {
    return { usable: false, reason: f.persistent ? `bitmap missing (${previous.id}: removed by someone else, or QEMU stopped uncleanly before storing it in the image)` : 'bitmap missing (QEMU restarted with a raw disk?)' };
  }
  if (f.bitmap !== previous.id) return { usable: false, reason: `bitmap missing (${previous.id}; the disk tracks with ${f.bitmap}, started by a point the appliance does not have)` };
  const now = (await dirtyBitmaps(f.qmp, f.node)).find((b) => b.name === f.bitmap);
  if (!now) return { usable: false, reason: `bitmap missing (${f.bitmap} was removed during the view)` };
  if (now.inconsistent) return { usable: false, reason: 'bitmap inconsistent (unclean shutdown)' };
  let client: NbdClient | undefined;
  try {
    client = await NbdClient.connect({ target: { path: f.nbdSocket }, exportName: f.exportName, metaContexts: [CONTEXT.QEMU_DIRTY_BITMAP_PREFIX + f.bitmap] });
    const extents: Array<[number, number]> = [];
    for await (const r of dirtyRanges(client, f.bitmap)) extents.push([r.offset, r.length]);
    return { usable: true, extents };
  } finally {
    await client?.close();
  }
}

export function rollBack(qmp: QmpClient, node: string, frozen: string, next: string): Promise<unknown> {
  return transaction(qmp, [
    transactionAction('block-dirty-bitmap-enable', { node, name: frozen }),
    transactionAction('block-dirty-bitmap-merge', { node, target: frozen, bitmaps: [next] }),
    transactionAction('block-dirty-bitmap-remove', { node, name: next }),
  ]);
}

/**
 * Why a disk's identity (inspect.ts diskIdentity: `path#dev:ino`) is not the reference's: the same device now
 * reads another file. Another path is a storage migration (a mirror to new storage, on this host or on the way
 * to another one). The same path with another file is one too when the reference's bitmap is on the disk
 * (`carried`: a live migration with its disks copied to the same path on another host brought it along);
 * otherwise a replaced disk. Either way the bitmap is not trusted: a mirror does not keep it in step with the
 * copy under the name the appliance holds, so the caller compares digests.
 */
export function identityChange(was: string, now: string, carried: boolean): string {
  const path = (id: string): string => id.slice(0, Math.max(0, id.lastIndexOf('#')));
  if (path(was) !== path(now)) return `storage migrated (the disk is now ${path(now)}, it was ${path(was)}; a mirror does not carry the tracking bitmap)`;
  if (carried) return `storage migrated (a new copy of ${path(now)}: ${was} is now ${now}; the bitmap that came with the VM is not trusted for a copied disk)`;
  return `disk replaced (was ${was}, now ${now})`;
}
