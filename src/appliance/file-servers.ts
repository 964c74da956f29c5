/**
 * Reads of VM disks that lie on SMB 3.0 shares go to the file server's agent (DPM's model; src/smb/).
 *
 * The host's view (view.open) reports such a disk `onShare` ({server, share, path}): the frozen base file of
 * its checkpoint. `openOnFileServers` picks, per such disk, the connected file-server agent that serves the
 * share (its inventory's `host.fileServer.shares`; with several, the one named like the share's server) and
 * opens the file there (share.open): the engine then reads that session, so the data goes from the file
 * server to the appliance. No such agent: SV_ERR_SMB_NO_FILE_SERVER (the disk is not read through the host).
 * The sessions are released before the host's view (whose release merges the checkpoint back).
 */
import { SvError } from '../errors/index.js';
import type { AgentResult } from '../agent/rpc.js';
import type { AgentAccess } from './vm-jobs.js';

export interface FileServerSession {
  readonly agentId: string;
  readonly host: string;
  readonly session: string;
}

type ViewDisks = AgentResult<'view.open'>['disks'];

/** Disk index → the file server's session reading it (only the disks that are on a share). */
export async function openOnFileServers(agents: AgentAccess, disks: ViewDisks, signal: AbortSignal, log: (line: string) => void): Promise<Map<number, FileServerSession>> {
  const out = new Map<number, FileServerSession>();
  try {
    for (const d of disks) {
      if (!d.onShare) continue;
      const { server, share, path } = d.onShare;
      const candidates = agents.hosts().filter((h) => h.connected !== false && h.shares?.includes(share));
      const fs = candidates.length > 1 ? candidates.find((h) => h.name === server) : candidates[0];
      if (!fs) {
        throw new SvError('SV_ERR_SMB_NO_FILE_SERVER', candidates.length
          ? `disk ${d.name} is on share ${share} of ${server}, which ${candidates.length} file-server agents serve (${candidates.map((c) => c.name).join(', ')}), none named ${server}`
          : `disk ${d.name} is on share ${share} of ${server}, and no connected file-server agent serves it: run \`shadowvault agent --file-server --share ${share}=PATH\` on the file server`, { share, server, disk: d.name });
      }
      const opened = (await agents.rpc.call(fs.id, 'share.open', { share, path }, undefined, signal)).result;
      if (opened.virtualSize !== d.virtualSize) {
        await agents.rpc.call(fs.id, 'view.release', { session: opened.session }).catch(() => undefined);
        throw new SvError('SV_ERR_AGENT_BAD_ANSWER', `file server ${fs.name ?? fs.id}: ${share}/${path} is ${opened.virtualSize} bytes, the host's disk ${d.name} ${d.virtualSize}`, { share, path });
      }
      out.set(d.index, { agentId: fs.id, host: fs.name ?? fs.id, session: opened.session });
      log(`disk ${d.name} is on share ${share} (${path}): read by file server ${fs.name ?? fs.id}`);
    }
  } catch (err) {
    await releaseOnFileServers(agents, out);
    throw err;
  }
  return out;
}

export async function releaseOnFileServers(agents: AgentAccess, sessions: ReadonlyMap<number, FileServerSession>): Promise<void> {
  await Promise.all([...sessions.values()].map((s) => agents.rpc.call(s.agentId, 'view.release', { session: s.session }).catch(() => undefined)));
}
