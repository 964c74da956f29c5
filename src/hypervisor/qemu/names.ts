/**
 * Names of everything the QEMU driver creates inside QEMU or on disk. Each starts with `sv-` and carries the
 * token of the view that made it, so cleanupLeftovers() recognises exactly its own and nothing else:
 *
 *   sv-<token>-scr<i>     qcow2 node on the scratch file (copy-before-write target)
 *   sv-<token>-cbw<i>     copy-before-write filter inserted above disk i's node
 *   sv-<token>-snap<i>    snapshot-access node: the point-in-time view of disk i
 *   sv-<token>-exp<i>     NBD export of that view (export id = export name)
 *   sv-<token>-cow<i>     NBD export of the scratch node with qemu:allocation-depth (raw disks: what the
 *                         copy-before-write has saved, for direct reads of the disk file)
 *   sv-<token>-<i>.qcow2  scratch file in the scratch folder
 *   sv-track-<token>      a dirty bitmap on a disk node: enabled = the disk's current tracking bitmap (not
 *                         a leftover); disabled = frozen by a view that was not committed or aborted
 *
 * Node names are at most 31 characters in QEMU: a token is 8 hex digits, so `sv-xxxxxxxx-snap999` fits.
 */
import { randomBytes } from 'node:crypto';

export const PREFIX = 'sv-';
export const TRACK_PREFIX = 'sv-track-';

export const newToken = (): string => randomBytes(4).toString('hex');

export const names = (token: string, i: number) => ({
  scratchNode: `${PREFIX}${token}-scr${i}`,
  cbwNode: `${PREFIX}${token}-cbw${i}`,
  snapNode: `${PREFIX}${token}-snap${i}`,
  exportId: `${PREFIX}${token}-exp${i}`,
  cowExport: `${PREFIX}${token}-cow${i}`,
  scratchFile: `${PREFIX}${token}-${i}.qcow2`,
});

export const trackingBitmap = (token: string): string => `${TRACK_PREFIX}${token}`;

/** The token inside one of our names, or undefined for a name that is not ours. */
export function tokenOf(name: string): string | undefined {
  return /^sv-(?:track-)?([0-9a-f]{8})(?:-|\.|$)/u.exec(name)?.[1];
}

export const isOurs = (name: string | undefined): name is string => name !== undefined && tokenOf(name) !== undefined;
export const isTrackingBitmap = (name: string | undefined): name is string => name !== undefined && name.startsWith(TRACK_PREFIX) && isOurs(name);
