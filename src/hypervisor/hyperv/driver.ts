/**
 * The Hyper-V HypervisorDriver (src/hypervisor/driver.ts) over a host layer (host.ts): PowerShell/CIM on a real
 * host (`--driver hyperv`), or the SIMULATION (`--driver hyperv-sim`). Mapping and sequences: docs/HYPERVISOR.md.
 *
 *   listVms          host.listVms (one call) + the state file's tracked disks → inventory.ts vmInfo; a clustered
 *                    VM whose group another node owns is reported with migration 'completed' (its owner node
 *                    backs it up; inventory.ts), and createView refuses it (SV_ERR_AGENT_VM_NOT_HOSTED)
 *   checkOnline      inventory.ts onlineCheck (DPM's requirements, each unmet one recorded)
 *   createView       online: recovery checkpoint, ConsistencyLevel ApplicationConsistent (VSS in the guest);
 *                    offline (requirements unmet, or asked): running VM → save state, crash-consistent recovery
 *                    checkpoint, resume (pauseMs measured; the resume runs whatever failed); VM off or saved →
 *                    the checkpoint alone (pauseMs 0). In 'auto', an application-consistent checkpoint the guest
 *                    refuses falls back to offline with the reason recorded.
 *   view             view.ts (frozen parent VHDX as a `file` source, RCT changes, commit/abort)
 *   cleanupLeftovers (only VMs this node owns, never another node's open checkpoint) VMs this driver left saved (state.ts) resumed; merging re-enabled where left disabled;
 *                    `sv-` recovery checkpoints not held by an open view removed; of the `sv-` reference points
 *                    only the newest kept per VM (newestReference: by the state file, not by creation time,
 *                    which Msvm_VirtualSystemReferencePoint lacks); configuration exports (config-exports/export-<token>-*) of
 *                    views that are not open removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SvError, hasCode, toWire } from '../../errors/index.js';
import type { CleanupReport, HypervisorDriver, ImportRequest, ImportResult, OnlineCheck, PointInTimeView, ViewRequest, VmInfo } from '../driver.js';
import type { HvCheckpoint, HvReferencePoint, HvVm, HyperVHost } from './host.js';
import { PREFIX, diskKey, fallbackReason, onlineCheck, ownedElsewhere, vmInfo } from './inventory.js';
import { HyperVStateFile, type HyperVState } from './state.js';
import { HyperVView, type HyperVViewDisk } from './view.js';

export interface HyperVDriverOptions {
  readonly host: HyperVHost;
  /** Folder of the driver's state file. */
  readonly stateDir: string;
  /** This host's cluster node name, compared with Get-ClusterGroup OwnerNode. Default: os.hostname(). */
  readonly nodeName?: string;
}

/**
 * The reference point the appliance's newest point refers to, among this driver's (`sv-`) ones of a VM: the
 * one being converted when the driver was killed, else the last one converted (state.ts), else, when the
 * state does not know (lost, or written by another node), the newest by creation time if every one has it.
 * Undefined: no way to tell (Msvm_VirtualSystemReferencePoint has no creation time), so all are kept.
 */
export function newestReference(refs: readonly HvReferencePoint[], state: HyperVState, vmId: string): string | undefined {
  const names = new Set(refs.map((r) => r.name));
  for (const known of [state.converting[vmId], state.latest[vmId]]) if (known !== undefined && names.has(known)) return known;
  if (refs.length === 0 || refs.some((r) => !r.created)) return refs.length === 1 ? refs[0]!.name : undefined;
  return [...refs].sort((a, b) => a.created.localeCompare(b.created))[refs.length - 1]!.name;
}

function wire(err: unknown): { code: string; message: string } {
  const { code, message } = toWire(err);
  return { code, message };
}

export class HyperVDriver implements HypervisorDriver {
  readonly #host: HyperVHost;
  readonly #state: HyperVStateFile;
  readonly #views = new Map<string, HyperVView>();
  readonly #scratchDir: string;
  readonly #nodeName: string;

  constructor(opts: HyperVDriverOptions) {
    this.#host = opts.host;
    this.#nodeName = opts.nodeName ?? hostname();
    this.#state = new HyperVStateFile(opts.stateDir);
    this.#scratchDir = join(opts.stateDir, 'config-exports');
    mkdirSync(this.#scratchDir, { recursive: true });
  }

  get hypervisor(): { readonly name: 'hyper-v'; readonly version: string } {
    return { name: 'hyper-v', version: this.#host.description };
  }

  async listVms(): Promise<VmInfo[]> {
    // One host call per inventory poll: tracking state comes from this driver's own record of its commits.
    const tracked = this.#state.read().tracked;
    return (await this.#host.listVms()).map((vm) => vmInfo(vm, new Set(tracked[vm.id] ?? []), this.#nodeName));
  }

  async checkOnline(vmId: string, opts: { allowOnline?: boolean } = {}): Promise<OnlineCheck> {
    return onlineCheck(await this.#vm(vmId), opts.allowOnline !== false);
  }

  async createView(vmId: string, req: ViewRequest): Promise<PointInTimeView> {
    const vm = await this.#vm(vmId);
    const owner = ownedElsewhere(vm, this.#nodeName);
    if (owner !== undefined) throw new SvError('SV_ERR_AGENT_VM_NOT_HOSTED', `VM ${vm.name} is clustered and its group is owned by node ${owner}, not this node (${this.#nodeName}): its owner node backs it up`, { vmId, ownerNode: owner, node: this.#nodeName });
    const open = [...this.#views.values()].find((v) => v.vmId === vmId);
    if (open) throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vmId}: view ${open.token} is still open (release it first)`, { vmId, open: open.token });
    const pass = vm.disks.find((d) => d.format === 'PassThrough');
    if (pass) throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vm.name}: disk ${diskKey(pass)} is a pass-through physical disk; no checkpoint can hold it`, { vmId });
    const check = onlineCheck(vm, req.allowOnline !== false);
    if (req.mode === 'online' && !check.possible) {
      throw new SvError('SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE', `VM ${vm.name}: online backup not possible: ${check.unmet.map((u) => u.reason).join('; ')}`, { vmId, unmet: check.unmet });
    }
    const token = randomBytes(4).toString('hex');
    const name = `${PREFIX}${token}`;
    const reasons: string[] = [];
    let cp: HvCheckpoint | undefined;
    let consistency: 'application' | 'offline' = 'offline';
    let freezeMs: number | undefined;
    let pauseMs: number | undefined;
    if (req.mode !== 'offline' && check.possible) {
      const t0 = performance.now();
      try {
        cp = await this.#host.createRecoveryCheckpoint(vmId, { name, consistencyLevel: 'ApplicationConsistent', ignoreNonSnapshottableDisks: false });
        consistency = 'application';
        freezeMs = Math.round(performance.now() - t0);
      } catch (err) {
        if (req.mode === 'online' || !hasCode(err, 'SV_ERR_HYPERV_JOB_FAILED')) throw this.#failed(vm, err);
        reasons.push(`the application-consistent checkpoint failed, offline instead: ${(err as Error).message}`);
      }
    } else {
      reasons.push(...(req.mode === 'offline' ? ['offline requested'] : check.unmet.map((u) => u.reason)));
    }
    if (!cp) ({ cp, pauseMs } = await this.#offline(vm, name, token));
    const disks: HyperVViewDisk[] = [];
    for (const [index, d] of vm.disks.entries()) {
      const frozen = cp.frozen.find((f) => f.diskIdentifier === d.diskIdentifier);
      if (!frozen) {
        await this.#host.removeCheckpoint(cp.id).catch(() => undefined);
        throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vm.name}: checkpoint ${cp.name} holds no file for disk ${diskKey(d)}`, { vmId });
      }
      const fallback = fallbackReason(vm, d);
      if (fallback) reasons.push(`disk ${diskKey(d)}: ${fallback}`);
      disks.push({
        index, key: diskKey(d), name: d.path.split(/[\\/]/u).pop()!, virtualSize: d.virtualSize, identity: d.diskIdentifier,
        source: { kind: 'file', path: frozen.path, format: d.format === 'VHD' ? 'vhd' : 'vhdx' },
        // The RCT id itself exists only once the checkpoint is a reference point (commit): the reference names
        // that reference point by its name; changes() looks its RCT id up.
        nextReference: fallback ? null : { id: name, diskIdentity: d.diskIdentifier, virtualSize: d.virtualSize },
        frozenPath: frozen.path, ...(fallback ? { fallbackReason: fallback } : {}),
      });
    }
    const view = new HyperVView({
      host: this.#host, state: this.#state, vmId, token, checkpoint: cp, consistency, reasons, disks,
      configurationVersion: vm.configurationVersion, scratchDir: this.#scratchDir,
      ...(pauseMs !== undefined ? { pauseMs } : {}), ...(freezeMs !== undefined ? { freezeMs } : {}),
      onReleased: (t) => this.#views.delete(t),
    });
    this.#views.set(token, view);
    return view;
  }

  /**
   * Import-VM (import-vm.ps1: Compare-VM -Copy -GenerateNewId, the disks found in the folder by the names the
   * configuration gives them) from the configuration file in `req.folder`: the .vmcx (or .xml; the simulation's
   * .sim-vmcx.json). The new VM is left off.
   */
  async importVm(req: ImportRequest): Promise<ImportResult> {
    const names = req.configuration.files.map((f) => f.name);
    const main = names.find((n) => n.endsWith('.sim-vmcx.json')) ?? names.find((n) => n.toLowerCase().endsWith('.vmcx')) ?? names.find((n) => n.toLowerCase().endsWith('.xml'));
    if (!main) throw new SvError('SV_ERR_HYPERVISOR_BAD_CONFIGURATION', `import into ${this.#host.description}: the configuration (${names.join(', ')}) has no .vmcx, .xml or .sim-vmcx.json file`, { files: names });
    const vmId = await this.#host.importVm(join(req.folder, main), req.folder);
    const vm = (await this.#host.listVms()).find((v) => v.id === vmId);
    return { vmId, name: vm?.name ?? vmId };
  }

  async cleanupLeftovers(): Promise<CleanupReport> {
    const removed: string[] = [];
    const errors: Array<{ what: string; code: string; message: string }> = [];
    const held = new Set([...this.#views.values()].map((v) => v.checkpoint.id));
    const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
        removed.push(what);
      } catch (err) {
        errors.push({ what, ...wire(err) });
      }
    };
    // Configuration exports a killed run left (export-<token>-*): every one not of an open view.
    const open = new Set(this.#views.keys());
    for (const e of readdirSync(this.#scratchDir, { withFileTypes: true }).filter((x) => x.isDirectory())) {
      const token = /^export-([0-9a-f]+)-/u.exec(e.name)?.[1];
      if (token !== undefined && !open.has(token)) await attempt(`configuration export ${e.name}`, () => rm(join(this.#scratchDir, e.name), { recursive: true, force: true }));
    }
    const saved = this.#state.read().saved;
    for (const vm of await this.#host.listVms()) {
      // Another node's VM (a stale listing, or shared storage seen from here): its checkpoints may be its
      // owner's open view; the owner cleans up its own leftovers.
      if (ownedElsewhere(vm, this.#nodeName) !== undefined) continue;
      if (saved[vm.id] && !this.#views.size) {
        await attempt(`resumed VM ${vm.name}, left saved by view ${saved[vm.id]}`, async () => {
          if (vm.state === 'Saved') await this.#host.resumeVm(vm.id);
          await this.#state.update((s) => void delete s.saved[vm.id]);
        });
      }
      try {
        if (!(await this.#host.getMergeEnabled(vm.id))) await attempt(`re-enabled checkpoint merging of VM ${vm.name}`, () => this.#host.setMergeEnabled(vm.id, true));
        for (const cp of await this.#host.listCheckpoints(vm.id)) {
          if (cp.kind !== 'Recovery' || !cp.name.startsWith(PREFIX) || held.has(cp.id)) continue;
          await attempt(`recovery checkpoint ${cp.name} of VM ${vm.name}`, () => this.#host.removeCheckpoint(cp.id));
        }
        const refs = (await this.#host.listReferencePoints(vm.id)).filter((r) => r.name.startsWith(PREFIX));
        const keep = newestReference(refs, this.#state.read(), vm.id);
        if (keep !== undefined) {
          await this.#state.update((s) => {
            s.latest[vm.id] = keep;
            delete s.converting[vm.id];
          });
        }
        for (const r of keep === undefined ? [] : refs.filter((x) => x.name !== keep)) {
          await attempt(`reference point ${r.name} of VM ${vm.name} (older than ${keep})`, async () => {
            await this.#host.destroyReferencePoint(r.id);
            await this.#state.update((s) => void delete s.references[r.name]);
          });
        }
      } catch (err) {
        errors.push({ what: `VM ${vm.name}`, ...wire(err) });
      }
    }
    return { removed, errors };
  }

  async close(): Promise<void> {
    for (const v of [...this.#views.values()]) await v.release().catch(() => undefined);
  }

  async #vm(vmId: string): Promise<HvVm> {
    const vm = (await this.#host.listVms()).find((v) => v.id === vmId);
    if (!vm) throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `no VM ${vmId} on this Hyper-V host (${this.#host.description})`, { vmId });
    return vm;
  }

  /** Save state (DPM's offline backup) → crash-consistent recovery checkpoint → resume, for a running VM. */
  async #offline(vm: HvVm, name: string, token: string): Promise<{ cp: HvCheckpoint; pauseMs: number }> {
    const req = { name, consistencyLevel: 'CrashConsistent', ignoreNonSnapshottableDisks: false } as const;
    if (vm.state !== 'Running') {
      try {
        return { cp: await this.#host.createRecoveryCheckpoint(vm.id, req), pauseMs: 0 };
      } catch (err) {
        throw this.#failed(vm, err);
      }
    }
    await this.#state.update((s) => void (s.saved[vm.id] = token));
    const t0 = performance.now();
    let failure: unknown;
    let cp: HvCheckpoint | undefined;
    try {
      await this.#host.saveVm(vm.id);
      cp = await this.#host.createRecoveryCheckpoint(vm.id, req);
    } catch (err) {
      failure = err;
    } finally {
      try {
        await this.#host.resumeVm(vm.id);
        await this.#state.update((s) => void delete s.saved[vm.id]);
      } catch (err) {
        failure ??= err;
      }
    }
    const pauseMs = Math.round(performance.now() - t0);
    if (failure !== undefined || !cp) {
      if (cp) await this.#host.removeCheckpoint(cp.id).catch(() => undefined);
      throw this.#failed(vm, failure);
    }
    return { cp, pauseMs };
  }

  #failed(vm: HvVm, err: unknown): SvError {
    if (hasCode(err, 'SV_ERR_HYPERVISOR_VM_NOT_FOUND', 'SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE')) return err as SvError;
    return new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vm.name}: the recovery checkpoint failed: ${(err as Error)?.message ?? String(err)}`, { vmId: vm.id, cause: wire(err) }, { cause: err });
  }
}
