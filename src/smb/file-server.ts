/**
 * The file server's side of VMs on SMB 3.0 storage (DPM's "agent on the file server").
 *
 * A host agent takes a VM's point in time with a checkpoint (src/hypervisor/qemu/checkpoint.ts): the VM
 * writes into a new overlay file on the share, and the disk's base file there stops changing. Its view's
 * disk is then that base file (a `file` reference); when the file lies on one of the host's `--smb-share`s,
 * view.open reports it `onShare` ({server, share, path inside the share}) and the appliance asks the file
 * server's agent (`--file-server --share NAME=PATH`) to read it: share.open opens the file locally with the
 * existing readers, and the data goes from the file server to the appliance, never through the host. The
 * host keeps the file frozen until the appliance releases the host's view (after the file server's session).
 *
 * The file server trusts no path: `resolveInShare` keeps it inside the served folder (SV_ERR_SMB_BAD_PATH).
 */
import { statSync } from 'node:fs';
import { SvError } from '../errors/index.js';
import type { HypervisorDriver, PointInTimeView } from '../hypervisor/driver.js';
import type { DiskSourceRef } from '../sources/types.js';
import { resolveInShare, shareOf, type SmbShare } from './shares.js';

/** `onShare` of a view disk whose source is a file on one of `shares`. */
export function onShareOf(shares: readonly SmbShare[] | undefined, source: DiskSourceRef): { server: string; share: string; path: string } | undefined {
  if (!shares?.length || source.kind !== 'file') return undefined;
  const on = shareOf(shares, source.path);
  return on ? { server: on.share.server, share: on.share.name, path: on.path } : undefined;
}

/** A one-disk "view" over a served share's file, for the view methods' sessions (nothing to commit or roll back). */
export function openSharedFile(served: ReadonlyMap<string, string> | undefined, share: string, path: string): PointInTimeView {
  const root = served?.get(share);
  if (!root) {
    throw new SvError('SV_ERR_SMB_BAD_PATH', `this agent serves no share "${share}"${served?.size ? ` (it serves ${[...served.keys()].join(', ')})` : ' (it is not a file server: start it with --file-server --share NAME=PATH)'}`, { share, path });
  }
  const file = resolveInShare(share, root, path);
  const st = statSync(file);
  if (!st.isFile()) throw new SvError('SV_ERR_SMB_BAD_PATH', `share ${share}: "${path}" is not a regular file`, { share, path });
  const name = path.split('/').at(-1) ?? path;
  return {
    vmId: `share:${share}/${path}`,
    consistency: 'crash',
    reasons: [],
    disks: [{ index: 0, key: name, name, virtualSize: st.size, identity: `${share}/${path}`, source: { kind: 'file', path: file }, nextReference: null }],
    changes: async () => ({ usable: false, reason: 'the file server has no change tracking: the host that froze the file answers view.changes' }),
    configuration: async () => { throw new SvError('SV_ERR_HYPERVISOR_NO_CONFIGURATION', `share ${share}: a file server's session has no VM configuration (the host's view has it)`, { share, path }); },
    commit: async () => undefined,
    abort: async () => undefined,
    release: async () => undefined,
  };
}

/** The file server's agent runs no hypervisor: no VMs, nothing to clean. */
export const NO_HYPERVISOR: HypervisorDriver = {
  hypervisor: { name: 'none', version: '-' },
  listVms: async () => [],
  checkOnline: async (vmId) => { throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `a file server's agent has no VM ${vmId}`, { vmId }); },
  createView: async (vmId) => { throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `a file server's agent has no VM ${vmId}`, { vmId }); },
  importVm: async (req) => { throw new SvError('SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', 'a file server\'s agent runs no hypervisor: it cannot import a VM', { folder: req.folder }); },
  cleanupLeftovers: async () => ({ removed: [], errors: [] }),
  close: async () => undefined,
};
