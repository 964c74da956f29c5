/**
 * Jobs of VM data sources: backups and restores to the host run through the host agent of the host where the
 * VM is now (the inventory tells which).
 *
 * BACKUP, one recovery point:
 *   1. locate the VM: the connected agent whose host runs it (locateVm: several hosts report a VM during a live
 *      migration; the placement picks the side that runs it, or refuses: SV_ERR_AGENT_NO_HOST, _VM_MIGRATING,
 *      _VM_AMBIGUOUS);
 *   2. view.open on that agent (mode auto: online when the VM meets the requirements and the source allows
 *      it, else offline), the point in time of all the VM's disks;
 *      With a protection group's `disks` filter (device names, e.g. `vblk1`), only those disks of the view are
 *      backed up (none of them in the view: SV_ERR_CORE_INVALID_ARGUMENT naming the VM's disks); the point's
 *      disks are the chosen ones in view order, and the previous point's disk at the same position is used only
 *      when it has the same name;
 *   3. per disk, how to find its changes: no previous point / a disk new or resized since → 'initial' (every
 *      block); else view.changes with the previous point's ChangeReference for that disk → the changed
 *      extents ('bitmap') or, unusable, digest comparison at the source ('digest', with the reason and its
 *      code `fallback`, fallback.ts: e.g. 'storage-migrated' after a mirror to new storage);
 *   3b. view.configuration: the VM's configuration files as of the point (parsed as hostile input,
 *      src/hypervisor/config.ts), kept with the point; a view that has none (a stopped QEMU VM, an agent
 *      without the method) or a failed export is logged and the point is kept without one;
 *      A disk on an SMB share (the view reports it `onShare`) is read by the file server's agent instead
 *      (file-servers.ts: share.open there; released before the host's view, which merges the checkpoint);
 *   4. the engine backs the disks up as `agent` references (the agent hashes and compresses at the source and
 *      sends only changed blocks) and publishes the point, recording consistency, reasons, pause/freeze time,
 *      tracking, the next change references and the bytes sent;
 *   5. THEN view.commit (the agent advances change tracking). Any failure before the point is published →
 *      view.abort (tracking rolled back: the next run still sees every change). view.release always.
 *   A commit that fails after the point is published is only logged: abort semantics keep every change in
 *   the agent's next answer (the new reference covers at least the changes since this point).
 *
 * RESTORE TO THE HOST: the point's disk is streamed from the store as a raw image into restore.open/write/
 * close on the VM's current host agent, in chunks of at most 8 MiB; all-zero chunks are not sent (the
 * agent's file is sparse). A failure closes the agent's handle without commit (nothing left on the host).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SvError, hasCode } from '../errors/index.js';
import type { AgentRpc, AgentResult } from '../agent/rpc.js';
import type { ChangeReference, MigrationRole } from '../hypervisor/driver.js';
import { joinConfiguration, parseConfigDescription, type VmConfiguration } from '../hypervisor/config.js';
import { placeVm, rank, RUNS } from './agents/placement.js';
import { isZero } from '../native/index.js';
import { DEFAULT_BLOCK_SIZE } from '../../storage/layout.js';
import type { DiskTracking } from '../../storage/manifest.js';
import { fallbackReason } from './fallback.js';
import type { AgentSourceRef } from '../sources/types.js';
import type { Engine, EngineContext, EngineDiskRef, PointFields } from './engine/index.js';
import { openOnFileServers, releaseOnFileServers, type FileServerSession } from './file-servers.js';
import type { DataSource } from './model.js';

/** What VM jobs need from the agent side of the appliance (src/appliance/agents/). */
export interface AgentAccess {
  readonly rpc: AgentRpc;
  /** Every VM of the inventory, with the agent (host id) that reports it and whether it is connected now. */
  vms(): ReadonlyArray<{ readonly id: string; readonly name: string; readonly hostId: string; readonly host: string; readonly hostConnected: boolean; readonly state: string; readonly migration?: MigrationRole }>;
  /** The paired agents (id → name, cluster, connected now; a file server's agent: the shares it serves). */
  hosts(): ReadonlyArray<{ readonly id: string; readonly name: string; readonly cluster: string | null; readonly connected: boolean; readonly shares?: readonly string[] }>;
}

export interface VmLocation {
  readonly agentId: string;
  readonly host: string;
  readonly cluster: string | null;
  readonly vmId: string;
  readonly name: string;
  /** Other hosts that report the VM now, and why they were not chosen (a migration in progress or just done). */
  readonly passedOver: ReadonlyArray<{ readonly host: string; readonly why: string }>;
  /**
   * Set when the VM left the host (and cluster) its source is bound to for this one: a migration out of the
   * cluster (see locateVm). The series continues here; the caller rebinds the source.
   */
  readonly movedFrom?: { readonly agentId: string; readonly host: string; readonly cluster: string | null };
}

/**
 * The connected agent whose host runs the VM now. Several hosts may report it (a live migration): the
 * placement (agents/placement.ts) picks the one that runs it, or refuses (migrating, ambiguous). With `bound`
 * (the agent the source was added on, and its cluster): that agent, or one of the same non-null cluster, serves
 * it. Another agent that claims the VM serves it only when the VM LEFT its bound host and cluster (a migration
 * out of the cluster, to a standalone host or another cluster, storage included):
 *   - the bound agent is connected (or no longer paired) and says it does not run the VM (stopped, migration
 *     completed, or not reported any more), and
 *   - no host of the bound cluster (connected or not, by its last report) says it runs the VM;
 * then `movedFrom` names the host it left, and the caller rebinds the source to the new host. Otherwise, when
 * only such others report it: SV_ERR_AGENT_VM_NOT_HOSTED (a host that is down cannot be told from a host that
 * lost its VM to an impostor, so nothing is backed up from the claimant).
 */
export function locateVm(agents: AgentAccess, vmId: string, bound?: { agentId?: string; cluster?: string | null }): VmLocation {
  const hosts = new Map(agents.hosts().map((h) => [h.id, h]));
  const all = agents.vms().filter((v) => v.id === vmId).map((v) => ({ ...v, cluster: hosts.get(v.hostId)?.cluster ?? null }));
  const allowed = (v: { hostId: string; cluster: string | null }): boolean => !bound?.agentId || v.hostId === bound.agentId || (!!bound.cluster && v.cluster === bound.cluster);
  const found = all.filter((v) => v.hostConnected && allowed(v));
  const foreign = all.filter((v) => v.hostConnected && !allowed(v));
  const home = bound?.agentId ? hosts.get(bound.agentId) : undefined;
  const left = foreign.length > 0 && bound?.agentId !== undefined && (home === undefined || home.connected) && all.filter(allowed).every((v) => rank(v) < RUNS);
  // Another host that only remembers the VM (stopped, left) claims nothing: the answer is then that the VM's
  // own host is not connected (SV_ERR_AGENT_NO_HOST below), not that someone else reports it.
  const claims = foreign.filter((v) => rank(v) === RUNS);
  if (found.length === 0 && claims.length > 0 && !left) {
    const f = claims[0]!;
    throw new SvError('SV_ERR_AGENT_VM_NOT_HOSTED', `VM ${vmId} is reported by host ${f.host}, not by the agent it was protected on${bound?.cluster ? ` nor by one of its cluster ${bound.cluster}` : ''}, and that agent is not connected or still runs it: re-add the source to move it`, { vmId, host: f.host, agentId: f.hostId });
  }
  const candidates = left ? [...found, ...foreign] : found;
  if (candidates.length === 0) {
    const known = all.filter(allowed);
    const why = known.length ? `its host${known.length > 1 ? 's' : ''} (${known.map((k) => k.host).join(', ')}) ${known.length > 1 ? 'are' : 'is'} not connected` : 'no agent reports it';
    throw new SvError('SV_ERR_AGENT_NO_HOST', `VM ${vmId}: ${why}`, { vmId, hosts: known.map((k) => k.host) });
  }
  const p = placeVm(vmId, candidates);
  const moved = left && !allowed(p.at);
  return {
    agentId: p.at.hostId, host: p.at.host, cluster: p.at.cluster, vmId: p.at.id, name: p.at.name,
    passedOver: p.others.map((o) => ({ host: o.sighting.host, why: o.why })),
    ...(moved ? { movedFrom: { agentId: bound!.agentId!, host: home?.name ?? bound!.agentId!, cluster: bound!.cluster ?? null } } : {}),
  };
}

/** A previous point's disk as the engine lists it (the fields a VM backup reads). */
interface PrevDisk {
  readonly name?: string;
  readonly virtualSize?: number;
  readonly changeRef?: ChangeReference | null;
}

/** The previous point's disks (as summarised: name, size, the change reference stored with each). */
function prevDisks(raw: Record<string, unknown> | undefined): PrevDisk[] {
  return Array.isArray(raw?.disks) ? (raw.disks as PrevDisk[]) : [];
}

function checkRef(v: unknown): ChangeReference | null {
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  return typeof r.id === 'string' && typeof r.diskIdentity === 'string' && typeof r.virtualSize === 'number' ? { id: r.id, diskIdentity: r.diskIdentity, virtualSize: r.virtualSize } : null;
}

export interface VmBackupResult {
  readonly pointId: string;
  readonly time: string;
  readonly disks: string[];
  readonly outcome: Awaited<ReturnType<Engine['backup']>>;
  readonly view: Omit<AgentResult<'view.open'>, 'session'>;
  readonly location: VmLocation;
  readonly tracking: readonly DiskTracking[];
  readonly committed: boolean;
  /** Bytes on the agent's channel (both directions) while the engine read the view. */
  readonly bytesSent: number;
}

/**
 * One recovery point of a VM source (see the top comment). `check`: a consistency check instead (every block
 * compared at the source and the replica repaired), in the same view lifecycle. `only`: the group's disk
 * filter (device names; empty or absent = every disk).
 */
export async function backupVm(source: DataSource, engine: Engine, agents: AgentAccess, ctx: EngineContext, op: 'backup' | 'check' = 'backup', only: readonly string[] = []): Promise<VmBackupResult> {
  const vm = source.vm;
  if (!vm) throw new SvError('SV_ERR_CORE_INTERNAL', `data source ${source.name} is not a VM source`, { source: source.name });
  const at = locateVm(agents, vm.id, vm);
  const rpc = agents.rpc;
  if (at.movedFrom) ctx.log(`VM ${at.name} (${vm.id}) left host ${at.movedFrom.host}${at.movedFrom.cluster ? ` (cluster ${at.movedFrom.cluster})` : ''} for host ${at.host}${at.cluster ? ` (cluster ${at.cluster})` : ' (standalone)'}: its series continues there`);
  ctx.log(`VM ${at.name} (${vm.id}) is on host ${at.host}${at.cluster ? ` (cluster ${at.cluster})` : ''}${at.passedOver.map((o) => `; not ${o.host}: ${o.why}`).join('')}; taking the point in time`);
  const points = (await engine.listPoints(source.name)).filter((p) => !p.damaged);
  const last = points[points.length - 1]?.raw;
  const blockSize = typeof last?.blockSize === 'number' ? last.blockSize : DEFAULT_BLOCK_SIZE;
  const open = (await rpc.call(at.agentId, 'view.open', { vmId: vm.id, mode: 'auto', allowOnline: vm.online !== false, blockSize }, undefined, ctx.signal)).result;
  const session = open.session;
  const { session: _s, ...view } = open;
  ctx.log(`view ${session.slice(0, 8)}…: ${open.consistency}${open.reasons.length ? ` (${open.reasons.join('; ')})` : ''}${open.pauseMs !== undefined ? `, paused ${open.pauseMs} ms` : ''}${open.freezeMs !== undefined ? `, frozen ${open.freezeMs} ms` : ''}`);
  let published = false;
  let onServers = new Map<number, FileServerSession>();
  try {
    const chosen = only.length ? open.disks.filter((d) => only.includes(d.name)) : open.disks;
    if (chosen.length === 0) {
      throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `VM ${at.name}: the protection group's disks (${only.join(', ')}) name none of its disks (${open.disks.map((d) => d.name).join(', ')})`, { vmId: vm.id, disks: [...only], vmDisks: open.disks.map((d) => d.name) });
    }
    const prev = prevDisks(last);
    const tracking: DiskTracking[] = [];
    const changed: Array<Array<readonly [number, number]> | null> = [];
    for (const [i, d] of chosen.entries()) {
      const was = prev[i]?.name === d.name ? prev[i] : undefined;
      if (!points.length || !was) {
        tracking.push({ method: 'initial', reason: !points.length ? 'first backup of the source' : 'disk added to the VM (or to the group\'s disks)' });
        changed.push(null);
        continue;
      }
      if (was.virtualSize !== d.virtualSize) {
        tracking.push({ method: 'initial', reason: `disk size changed from ${String(was.virtualSize)} to ${d.virtualSize}` });
        changed.push(null);
        continue;
      }
      const ans = (await rpc.call(at.agentId, 'view.changes', { session, disk: d.index, previous: checkRef(was.changeRef) }, undefined, ctx.signal)).result;
      if (ans.usable) {
        tracking.push({ method: 'bitmap' });
        changed.push(ans.extents.map(([o, l]) => [o, l] as const));
      } else {
        tracking.push({ method: 'digest', reason: ans.reason, fallback: fallbackReason(ans.reason) });
        changed.push(null);
      }
    }
    for (const [i, tr] of tracking.entries()) ctx.log(`disk ${chosen[i]!.name}: ${tr.method}${tr.fallback ? ` [${tr.fallback}]` : ''}${tr.reason ? ` (${tr.reason})` : ''}`);
    const configuration = op === 'check' ? undefined : await viewConfiguration(rpc, at.agentId, session, at.name, ctx);
    onServers = await openOnFileServers(agents, chosen, ctx.signal, (line) => ctx.log(line));
    const readerOf = (d: (typeof chosen)[number]): AgentSourceRef => {
      const fs = onServers.get(d.index);
      return fs
        ? { kind: 'agent', agentId: fs.agentId, session: fs.session, disk: 0, name: d.name, virtualSize: d.virtualSize }
        : { kind: 'agent', agentId: at.agentId, session, disk: d.index, name: d.name, virtualSize: d.virtualSize };
    };
    const readers = [at.agentId, ...new Set([...onServers.values()].map((f) => f.agentId))];
    const disks: EngineDiskRef[] = chosen.map((d, i) => ({
      name: d.name,
      source: readerOf(d),
      ...(changed[i] ? { changed: changed[i]! } : {}),
      tracking: tracking[i]!,
      ...(d.nextReference ? { changeRef: d.nextReference } : {}),
    }));
    const point: PointFields = {
      ...(configuration ? { configuration } : {}),
      consistency: open.consistency, reasons: open.reasons,
      ...(open.pauseMs !== undefined ? { pauseMs: open.pauseMs } : {}), ...(open.freezeMs !== undefined ? { freezeMs: open.freezeMs } : {}),
    };
    const wire = (): number => readers.reduce((n, id) => n + rpc.bytes(id).sent + rpc.bytes(id).received, 0);
    const before = wire();
    // A consistency check compares every block (the disks' change lists are not used) and repairs the replica.
    const outcome = op === 'check' ? await engine.check(source.name, disks.map(({ changed: _c, ...d }) => d), ctx) : await engine.backup(source.name, disks, ctx, point);
    published = true;
    const bytesSent = wire() - before;
    await releaseOnFileServers(agents, onServers); // the file server is done: the host may merge back
    let committed = true;
    try {
      await rpc.call(at.agentId, 'view.commit', { session }, undefined);
    } catch (err) {
      committed = false;
      ctx.log(`recovery point ${outcome.pointId} is safe, but the agent could not advance change tracking (${(err as Error).message}); the next backup sends every change since the previous point`);
    }
    return { pointId: outcome.pointId, time: outcome.time, disks: chosen.map((d) => d.name), outcome, view, location: at, tracking, committed, bytesSent };
  } catch (err) {
    if (!published) await rpc.call(at.agentId, 'view.abort', { session }).catch(() => undefined);
    throw err;
  } finally {
    await releaseOnFileServers(agents, onServers);
    await rpc.call(at.agentId, 'view.release', { session }).catch(() => undefined);
  }
}

/** The view's configuration (step 3b), or undefined with the reason logged. */
async function viewConfiguration(rpc: AgentRpc, agentId: string, session: string, vmName: string, ctx: EngineContext): Promise<VmConfiguration | undefined> {
  try {
    const a = await rpc.call(agentId, 'view.configuration', { session }, undefined, ctx.signal);
    const where = `configuration of VM ${vmName} from its agent`;
    const c = joinConfiguration(parseConfigDescription(a.result.configuration, where), a.payload ?? new Uint8Array(0), where);
    ctx.log(`configuration: ${c.format} ${c.version}${c.simulated ? ' (SIMULATION)' : ''}, ${c.files.map((f) => `${f.name} (${f.data.length} bytes)`).join(', ')}`);
    return c;
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    ctx.log(`no configuration kept with this point: ${(err as Error).message}`);
    return undefined;
  }
}

/** Longest a backup that failed because its VM left the host waits for the VM to settle on its new node. */
const FOLLOW_MS = 60_000;

/**
 * A backup that follows its VM: when the attempt fails and the VM is leaving or has left its node (a live
 * migration during the backup), the backup runs again, once, on the node that runs the VM now. The failed
 * attempt published nothing (backupVm aborts its view), so the point is taken exactly once. Waits for the
 * migration to end and the new node to report the VM at most FOLLOW_MS; a VM that runs on the same node with
 * no migration (asked from that node's agent, not from the inventory, which lags) gives back the first
 * failure. A backup that starts while its VM is between hosts (SV_ERR_AGENT_VM_MIGRATING: a migration ends, or
 * a host that may run it does not answer) waits the same FOLLOW_MS for the placement to settle before it tries.
 */
export async function backupVmFollowing(source: DataSource, engine: Engine, agents: AgentAccess, ctx: EngineContext, op: 'backup' | 'check' = 'backup', only: readonly string[] = [], followMs = FOLLOW_MS): Promise<VmBackupResult> {
  const vm = source.vm;
  let first: VmLocation | undefined;
  const settleBy = Date.now() + followMs;
  for (let logged = false; ;) {
    try {
      first = vm ? locateVm(agents, vm.id, vm) : undefined;
      break;
    } catch (err) {
      first = undefined; // backupVm throws the same, coded
      if (!hasCode(err, 'SV_ERR_AGENT_VM_MIGRATING') || Date.now() > settleBy || ctx.signal.aborted) break;
      if (!logged) ctx.log(`waiting for VM ${vm!.id} to settle on one host: ${(err as Error).message}`);
      logged = true;
      await sleep(250, undefined, { signal: ctx.signal }).catch(() => undefined);
    }
  }
  try {
    return await backupVm(source, engine, agents, ctx, op, only);
  } catch (err) {
    if (!vm || !first || ctx.signal.aborted) throw err;
    const from = first;
    const end = Date.now() + followMs;
    for (;;) {
      // the stored inventory lags behind (agents push on their poll): ask the first node itself. A first node
      // that does not answer (its agent died or disconnected) is a failure of that node, not a migration: the
      // job's own retry handles it, rather than waiting here for a move that is not happening.
      const there = await placeOn(agents, from.agentId, vm.id);
      if (there !== 'left') throw err;
      let now: VmLocation | undefined;
      try {
        now = locateVm(agents, vm.id, vm);
      } catch (e) {
        if (!hasCode(e, 'SV_ERR_AGENT_VM_MIGRATING', 'SV_ERR_AGENT_NO_HOST')) throw err;
      }
      if (now && now.agentId !== from.agentId) {
        ctx.log(`VM ${vm.id} moved from host ${from.host} to ${now.host} during the backup (${(err as Error).message}); backing up again on ${now.host}`);
        return backupVm(source, engine, agents, ctx, op, only);
      }
      if (Date.now() > end || ctx.signal.aborted) throw err;
      await sleep(250, undefined, { signal: ctx.signal }).catch(() => undefined);
    }
  }
}

/**
 * What `agentId`'s host says of the VM now (fresh from the agent): it still runs it with no migration
 * ('stays'), it is leaving or has left ('left'), or the agent does not answer ('unreachable').
 */
async function placeOn(agents: AgentAccess, agentId: string, vmId: string): Promise<'stays' | 'left' | 'unreachable'> {
  let vms;
  try {
    vms = (await agents.rpc.call(agentId, 'inventory.get', {})).result.vms;
  } catch {
    return 'unreachable';
  }
  const v = vms.find((x) => x.id === vmId);
  // a replica does not run anywhere and never migrates: its failure (e.g. resynchronising) is the answer
  if (v?.replica) return 'stays';
  return v !== undefined && v.migration === undefined && rank(v) === RUNS ? 'stays' : 'left';
}

export interface HostRestoreResult {
  readonly host: string;
  readonly path: string;
  readonly bytes: number;
}

/** Write disk `disk` of a point back to the VM's host, next to its disks (the agent's restore root). */
export async function restoreVmToHost(
  source: DataSource, engine: Engine, agents: AgentAccess, req: { pointId: string; disk: number; name: string }, ctx: EngineContext,
): Promise<HostRestoreResult> {
  const vm = source.vm;
  if (!vm) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `data source ${source.name} is not a VM source: restore it to a file instead`, { source: source.name });
  const at = locateVm(agents, vm.id, vm);
  const image = await engine.exportImage({ source: source.name, pointId: req.pointId, disk: req.disk, format: 'raw' }, ctx.signal);
  const rpc = agents.rpc;
  const { handle, path } = (await rpc.call(at.agentId, 'restore.open', { vmId: vm.id, name: req.name, virtualSize: image.length, format: 'raw' }, undefined, ctx.signal)).result;
  ctx.log(`restoring ${req.name} of point ${req.pointId} to ${at.host}:${path}`);
  const CHUNK = 8 * 1024 * 1024;
  let done = 0;
  const parts: Buffer[] = [];
  let have = 0;
  try {
    const flush = async (): Promise<void> => {
      const all = Buffer.concat(parts, have);
      parts.length = 0;
      have = 0;
      for (let at0 = 0; at0 < all.length; at0 += CHUNK) {
        const buf = all.subarray(at0, Math.min(all.length, at0 + CHUNK));
        if (!isZero(buf)) await rpc.call(at.agentId, 'restore.write', { handle, offset: done }, buf, ctx.signal);
        done += buf.length;
        ctx.onProgress(done, image.length);
      }
    };
    for await (const chunk of image.stream()) {
      parts.push(chunk as Buffer);
      have += (chunk as Buffer).length;
      if (have >= CHUNK) await flush();
    }
    if (have) await flush();
    if (done !== image.length) throw new SvError('SV_ERR_CORE_INTERNAL', `restore stream ended after ${done} of ${image.length} bytes`, { done, length: image.length });
    const closed = (await rpc.call(at.agentId, 'restore.close', { handle, commit: true }, undefined, ctx.signal)).result;
    return { host: at.host, path: closed.path, bytes: image.length };
  } catch (err) {
    await rpc.call(at.agentId, 'restore.close', { handle, commit: false }).catch(() => undefined);
    throw err;
  }
}

/** A VM backup's job result: the point summary, completed with what the VM backup knows (the summary wins). */
export function vmJobResult(r: VmBackupResult): Record<string, unknown> {
  const raw = r.outcome.raw;
  const disks = Array.isArray(raw.disks) ? (raw.disks as Array<Record<string, unknown>>).map((d, i) => ({ tracking: r.tracking[i], ...d })) : [];
  const { consistency, reasons, pauseMs, freezeMs } = r.view;
  return {
    pointId: r.pointId, time: r.time, host: r.location.host, ...(r.location.movedFrom ? { movedFrom: r.location.movedFrom.host } : {}), consistency, reasons,
    ...(pauseMs !== undefined ? { pauseMs } : {}), ...(freezeMs !== undefined ? { freezeMs } : {}),
    bytesSent: r.bytesSent, committed: r.committed, ...raw, disks,
  };
}
