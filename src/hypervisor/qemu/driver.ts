/**
 * The QEMU/KVM HypervisorDriver (src/hypervisor/driver.ts) over QMP: one unix socket per VM, given as paths
 * or globs (re-expanded on every listVms). Design, QMP sequences and names: docs/HYPERVISOR.md.
 *
 *   listVms          sockets.ts (one QmpClient per socket, reconnected) + inspect.ts; a socket whose QEMU is
 *                    gone → its VM from the state file as 'stopped' (or 'crashed' when this driver saw its
 *                    connection end without SHUTDOWN), else dropped; a socket that does not answer → 'unknown'
 *                    (under the VM's id when the state file knows it: that host may still run it).
 *                    Each live VM: its side of a live migration, and the dirty-bitmaps capability on
 *                    (migration.ts).
 *   checkOnline      online.ts
 *   createView       create-view.ts (running/paused VM), checkpoint.ts (a running VM with a disk under
 *                    `checkpointIn`: an SMB share), or stopped-view.ts (no QEMU: qemu-nbd on the files)
 *   cleanupLeftovers cleanup.ts per answering VM (a silent socket is tried again for cleanupWaitS, then
 *                    reported when a dead run left work there); checkpoint overlays of VMs whose QEMU is gone
 *                    merged offline (merge.ts); then leftover scratch files and qemu-nbd servers. createView
 *                    runs cleanup.ts first on a VM with a dead run's record (a cleanup that could not reach it).
 *
 * The state file (state-file.ts) in `stateDir` keeps per VM its disks, and what a view in progress changed
 * (paused, frozen, filters), so a killed driver's successor repairs it.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SvError, hasCode } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import type { CleanupReport, HypervisorDriver, ImportRequest, ImportResult, OnlineCheck, PointInTimeView, UnmetRequirement, ViewRequest, VmDisk, VmInfo } from '../driver.js';
import { cleanupVm } from './cleanup.js';
import { createCheckpointView } from './checkpoint.js';
import { checkGranularity, createRunningView } from './create-view.js';
import { mergeOffline } from './merge.js';
import { asVmGone, wireOf } from './errors.js';
import { inspectVm, probeGuestAgent, type GuestAgentProbe, type LiveVm } from './inspect.js';
import { ensureBitmapMigration, migrationRole } from './migration.js';
import { tokenOf } from './names.js';
import { onlineCheck } from './online.js';
import { expandSockets, QmpPool } from './sockets.js';
import { StateFile, type KnownVm } from './state-file.js';
import { createStoppedView, killLeftoverServer } from './stopped-view.js';
import type { QemuView } from './view.js';

export interface QemuDriverOptions {
  /** QMP unix sockets: paths or globs (`*`, `?`). */
  readonly qmp: readonly string[];
  /** Folder for the state file, the NBD sockets and (by default) scratch files. */
  readonly stateDir: string;
  /** Folder for the fleecing scratch files (default `<stateDir>/scratch`). */
  readonly allowedScratchDir?: string;
  /** Seconds one copy-before-write may take before it breaks the view (never the guest write). Default 30. */
  readonly cbwTimeoutS?: number;
  readonly qemuImg?: string;
  readonly qemuNbd?: string;
  /**
   * Folders (the local paths of SMB shares, src/smb/) whose VMs get checkpoint views (checkpoint.ts): the
   * guest switches to an overlay there and the base file is read in place, by the file server's agent.
   */
  readonly checkpointIn?: readonly string[];
  /** Seconds cleanupLeftovers keeps trying a QMP socket that does not answer before reporting it. Default 20. */
  readonly cleanupWaitS?: number;
}

type Resolved =
  | { kind: 'live'; socket: string; qmp: QmpClient; vm: LiveVm }
  | { kind: 'stopped'; socket: string; known: KnownVm; crashed: boolean }
  | { kind: 'unknown'; socket: string; error: SvError };

const found = new Map<string, string>();

/**
 * The path of a tool on PATH (`name` itself when not found: spawning it then fails with ENOENT). A path found
 * is kept: the lookup is a shell run synchronously (a few ms of the event loop), and every view asked it.
 */
export function which(name: string): string {
  const known = found.get(name);
  if (known) return known;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) return name;
  found.set(name, r.stdout.trim());
  return r.stdout.trim();
}

/** The VM's disks as the driver reports them (without the QMP node, device path and bitmaps). */
function disksOf(vm: LiveVm): VmDisk[] {
  return vm.disks.map(({ node: _n, qdev: _q, bitmaps: _b, ...d }) => d);
}

export class QemuDriver implements HypervisorDriver {
  readonly #opts: QemuDriverOptions;
  readonly #state: StateFile;
  readonly #pool: QmpPool;
  readonly #scratchDir: string;
  readonly #active = new Set<string>();
  readonly #views = new Map<string, QemuView>();
  #version = 'unknown';

  constructor(opts: QemuDriverOptions) {
    this.#opts = opts;
    this.#state = new StateFile(opts.stateDir);
    this.#scratchDir = opts.allowedScratchDir ?? join(opts.stateDir, 'scratch');
    this.#pool = new QmpPool({
      onGreeting: (c) => {
        const v = c.greeting.version.qemu;
        this.#version = `${v.major}.${v.minor}.${v.micro}`;
      },
    });
  }

  get hypervisor(): { readonly name: 'qemu'; readonly version: string } {
    return { name: 'qemu', version: this.#version };
  }

  async listVms(): Promise<VmInfo[]> {
    const out: VmInfo[] = [];
    for (const r of await this.#resolveAll()) {
      if (r.kind === 'live') {
        const ga = await probeGuestAgent(r.qmp);
        // tracking bitmaps travel with a live migration only with this capability (migration.ts)
        await ensureBitmapMigration(r.qmp);
        const migration = await migrationRole(r.qmp, r.vm.runState).catch(() => undefined);
        out.push({ ...this.#info(r.vm, ga), ...(migration ? { migration } : {}) });
      } else if (r.kind === 'stopped') {
        const [id] = Object.entries(this.#state.state.vms).find(([, v]) => v === r.known)!;
        out.push({ id, name: r.known.name, state: r.crashed ? 'crashed' : 'stopped', disks: r.known.disks, guestAgent: { present: false, answering: false } });
      } else {
        // a socket that does not answer: when the state file knows the VM behind it, say so under the VM's id
        // (state 'unknown'), so that the appliance knows this host may run it and backs up nothing from its
        // files elsewhere (agents/placement.ts) until the socket answers again
        const known = this.#knownBySocket(r.socket);
        const id = this.#idOf(known);
        out.push({ id: id ?? `qmp:${r.socket}`, name: known?.name ?? r.socket, state: 'unknown', disks: known?.disks ?? [], guestAgent: { present: false, answering: false }, error: wireOf(r.error) });
      }
    }
    return out;
  }

  /** The VM's id and disks through its own socket from the state file (no listing); undefined when that socket does not run it now. */
  async vmDisks(vmId: string): Promise<Pick<VmInfo, 'id' | 'disks'> | undefined> {
    const r = await this.#quick(vmId);
    return r && { id: r.vm.id, disks: disksOf(r.vm) };
  }

  async checkOnline(vmId: string, opts: { allowOnline?: boolean } = {}): Promise<OnlineCheck> {
    const r = await this.#resolve(vmId);
    if (r.kind === 'live') return onlineCheck(r.vm, await probeGuestAgent(r.qmp), opts.allowOnline !== false);
    const unmet: UnmetRequirement[] = [{ requirement: 'vm-running', reason: 'the VM is not running (no QEMU process)' }];
    if (opts.allowOnline === false) unmet.push({ requirement: 'online-allowed', reason: 'online backup is not allowed for this VM (source option)' });
    return { possible: false, unmet };
  }

  async createView(vmId: string, req: ViewRequest): Promise<PointInTimeView> {
    const r = await this.#resolve(vmId);
    const track = { onCreated: (t: string) => this.#active.add(t), onReleased: (t: string) => this.#released(t) };
    if (r.kind === 'live') {
      // One view per VM at a time: a second would find the first one's frozen bitmap and roll it back.
      const open = [...this.#views.values()].find((v) => v.vmId === vmId);
      if (open) throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `VM ${vmId}: view ${open.token} is still open (release it first)`, { vmId, open: open.token });
      const ga = await probeGuestAgent(r.qmp);
      // what a killed run left on this VM (its cleanup missed it: QEMU did not answer then) is removed first:
      // a new filter never stacks on an old one, a new overlay never on an old overlay
      if (this.#pendingFor(vmId)) {
        const dead = Object.entries(this.#state.state.views).filter(([token, v]) => v.vmId === vmId && !v.servers && !this.#active.has(token));
        const overlay = dead.some(([, v]) => v.overlays);
        const rep = await cleanupVm(r.qmp, r.vm, this.#state, this.#active, ga.socket);
        if (rep.errors.length && overlay) throw new SvError('SV_ERR_SMB_MERGE_FAILED', `VM ${vmId}: an earlier checkpoint overlay could not be merged back: ${rep.errors[0]!.message}`, { vmId, errors: rep.errors });
        if (rep.errors.length) throw new SvError('SV_ERR_HYPERVISOR_STATE', `VM ${vmId}: what an earlier, killed run left on it could not be removed: ${rep.errors[0]!.what}: ${rep.errors[0]!.message}`, { vmId, errors: rep.errors });
        this.#removeScratchFiles((token) => dead.some(([t]) => t === token), []);
        if (rep.removed.length) r.vm = await inspectVm(r.qmp, (id, qdev) => this.#underFilter(id, qdev));
      }
      const ctx = {
        qmp: r.qmp, state: this.#state, vm: r.vm, ga, scratchDir: this.#scratch(), nbdSocket: join(this.#opts.stateDir, `nbd-${vmId}.sock`),
        qemuImg: this.#opts.qemuImg ?? which('qemu-img'), cbwTimeoutS: this.#opts.cbwTimeoutS ?? 30, ...track,
      };
      const view = r.vm.disks.some((d) => this.#onCheckpointFolder(d.path))
        ? await createCheckpointView(ctx, req, checkGranularity(req.blockSize ?? 64 * 1024))
        : await createRunningView(ctx, req);
      this.#views.set(view.token, view);
      return view;
    }
    if (req.mode === 'online') throw new SvError('SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE', `VM ${vmId}: online backup not possible: the VM is not running`, { vmId, unmet: [{ requirement: 'vm-running' }] });
    // its disk files are whole only once a checkpoint overlay left by a crash is merged back
    const errors: Array<{ what: string; code: string; message: string }> = [];
    await this.#mergeOffline((id) => id === vmId, [], errors);
    if (errors.length) throw new SvError('SV_ERR_SMB_MERGE_FAILED', `VM ${vmId}: ${errors[0]!.message}`, { vmId });
    return createStoppedView({ state: this.#state, stateDir: this.#opts.stateDir, qemuNbd: this.#opts.qemuNbd ?? which('qemu-nbd'), ...track }, vmId, r.known.disks);
  }

  /** QEMU has no VM registry to import into: restore the configuration and disks as files (restore --config-to). */
  async importVm(req: ImportRequest): Promise<ImportResult> {
    throw new SvError('SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', `the QEMU driver cannot import a VM (a QEMU VM is a process started from a command line): restore with --config-to DIR and start QEMU from ${req.configuration.files[0]?.name ?? 'the configuration'}`, { folder: req.folder });
  }

  async cleanupLeftovers(): Promise<CleanupReport> {
    const removed: string[] = [];
    const errors: Array<{ what: string; code: string; message: string }> = [];
    const resolved = await this.#resolveForCleanup();
    for (const r of resolved) {
      if (r.kind === 'unknown') {
        const id = this.#idOf(this.#knownBySocket(r.socket));
        if (id !== undefined && this.#pendingFor(id)) {
          errors.push({ what: `VM ${id} (QMP ${r.socket})`, code: 'SV_ERR_HYPERVISOR_VM_GONE', message: `its QMP socket did not answer within ${this.#opts.cleanupWaitS ?? 20} s (${r.error.message}): what an earlier run left on it stays until the next cleanup or the next view of this VM` });
        }
        continue;
      }
      if (r.kind !== 'live') continue;
      try {
        const ga = await probeGuestAgent(r.qmp);
        const rep = await cleanupVm(r.qmp, r.vm, this.#state, this.#active, ga.socket);
        removed.push(...rep.removed);
        errors.push(...rep.errors);
      } catch (err) {
        errors.push({ what: `VM ${r.vm.name}`, ...wireOf(asVmGone(err, r.vm.id, 'cleanupLeftovers')) });
      }
    }
    // offline only for a VM whose QEMU is known gone (a socket that does not answer may be a busy QEMU: its
    // image lock would refuse qemu-img anyway; the next createView or start merges it online)
    const stopped = new Set(resolved.flatMap((r) => (r.kind === 'stopped' ? Object.entries(this.#state.state.vms).filter(([, v]) => v === r.known).map(([id]) => id) : [])));
    await this.#mergeOffline((vmId) => stopped.has(vmId), removed, errors);
    for (const [token, v] of Object.entries(this.#state.state.views)) {
      if (this.#active.has(token) || !v.servers) continue;
      for (const s of v.servers) if (killLeftoverServer(s.pid, s.socket)) removed.push(`qemu-nbd ${s.pid} (${s.socket})`);
      this.#state.update((st) => void delete st.views[token]);
    }
    // a view whose record is still here was not cleaned (its QEMU did not answer, a step failed): its filter
    // may still use its scratch file
    this.#removeScratchFiles((token) => this.#state.state.views[token] === undefined, removed);
    return { removed, errors };
  }

  /** Scratch files of views that are not live here and whose token `pick` accepts. */
  #removeScratchFiles(pick: (token: string) => boolean, removed: string[]): void {
    let files: string[] = [];
    try {
      files = readdirSync(this.#scratchDir);
    } catch {
      files = [];
    }
    for (const f of files) {
      const token = tokenOf(f);
      if (token === undefined || this.#active.has(token) || !pick(token) || !/^sv-[0-9a-f]{8}-\d+\.qcow2$/u.test(f)) continue;
      rmSync(join(this.#scratchDir, f), { force: true });
      removed.push(`scratch file ${f}`);
    }
  }

  async close(): Promise<void> {
    for (const v of [...this.#views.values()]) await v.release().catch(() => undefined);
    this.#pool.close();
  }

  #released(token: string): void {
    this.#active.delete(token);
    this.#views.delete(token);
  }

  /** Checkpoint overlays of the VMs `gone` picks (their QEMU is gone): merged into their bases with qemu-img. */
  async #mergeOffline(gone: (vmId: string) => boolean, removed: string[], errors: Array<{ what: string; code: string; message: string }>): Promise<void> {
    for (const [token, v] of Object.entries(this.#state.state.views)) {
      if (this.#active.has(token) || !v.overlays || !gone(v.vmId)) continue;
      let failed = false;
      for (const o of v.overlays) {
        try {
          if (await mergeOffline(o.path, this.#opts.qemuImg ?? which('qemu-img'))) {
            rmSync(o.path, { force: true });
            removed.push(`merged overlay ${o.path} back into its base (offline: QEMU gone)`);
          }
        } catch (err) {
          failed = true;
          errors.push({ what: `overlay ${o.path}`, ...wireOf(err) });
        }
      }
      if (!failed) this.#state.update((st) => void delete st.views[token]);
    }
  }

  #onCheckpointFolder(path: string): boolean {
    return (this.#opts.checkpointIn ?? []).some((f) => {
      const rel = relative(f, path);
      return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
    });
  }

  #scratch(): string {
    mkdirSync(this.#scratchDir, { recursive: true, mode: 0o700 });
    return this.#scratchDir;
  }

  #info(vm: LiveVm, ga: GuestAgentProbe): VmInfo {
    return {
      id: vm.id, name: vm.name, state: vm.state,
      disks: disksOf(vm),
      guestAgent: { present: ga.present, answering: ga.answering, ...(ga.version ? { version: ga.version } : {}) },
    };
  }

  /** Every configured socket, connected where possible; live VMs recorded in the state file. */
  async #resolveAll(): Promise<Resolved[]> {
    const out: Resolved[] = [];
    for (const socket of expandSockets(this.#opts.qmp, Object.values(this.#state.state.vms).map((v) => v.socket))) {
      const r = await this.#resolveSocket(socket);
      if (r) out.push(r);
    }
    return out;
  }

  /** One socket: live (inspected and remembered), stopped (known, QEMU gone), unknown, or nothing to list. */
  async #resolveSocket(socket: string, timeoutMs?: number): Promise<Resolved | undefined> {
    const c = await this.#pool.connect(socket, timeoutMs);
    const known = this.#knownBySocket(socket);
    if ('client' in c) {
      try {
        const vm = await inspectVm(c.client, (vmId, qdev) => this.#underFilter(vmId, qdev));
        this.#remember(vm, socket);
        return { kind: 'live', socket, qmp: c.client, vm };
      } catch (err) {
        const gone = asVmGone(err, socket, 'listVms');
        if (known && hasCode(gone, 'SV_ERR_HYPERVISOR_VM_GONE')) return { kind: 'stopped', socket, known, crashed: this.#pool.howEnded(socket) === 'crash' };
        return { kind: 'unknown', socket, error: gone instanceof SvError ? gone : new SvError('SV_ERR_CORE_INTERNAL', String(gone)) };
      }
    }
    if (c.gone && known) return { kind: 'stopped', socket, known, crashed: this.#pool.howEnded(socket) === 'crash' };
    if (!c.gone) return { kind: 'unknown', socket, error: c.error };
    return undefined;
  }

  /**
   * cleanupLeftovers' view of the sockets: one that does not answer is tried again, with a longer bound, for up
   * to `cleanupWaitS` (a QEMU whose main loop is busy, e.g. draining a killed run's copy-before-write, greets
   * late); one still silent is kept as unknown and reported by the caller when the state file has work there.
   */
  async #resolveForCleanup(): Promise<Resolved[]> {
    const all = await this.#resolveAll();
    const deadline = performance.now() + (this.#opts.cleanupWaitS ?? 20) * 1000;
    for (let i = 0; i < all.length; i++) {
      let r = all[i]!;
      while (r.kind === 'unknown' && performance.now() < deadline) {
        await new Promise((res) => setTimeout(res, 250));
        r = (await this.#resolveSocket(r.socket, Math.max(1, Math.min(5000, deadline - performance.now())))) ?? r;
      }
      all[i] = r;
    }
    return all;
  }

  /** Whether the state file holds work of a dead run (a view, a pause, a freeze) on `vmId`. */
  #pendingFor(vmId: string): boolean {
    const s = this.#state.state;
    const dead = (token: string | undefined): boolean => token !== undefined && !this.#active.has(token);
    return dead(s.paused[vmId]) || dead(s.frozen[vmId]) || Object.entries(s.views).some(([token, v]) => v.vmId === vmId && !v.servers && dead(token));
  }

  /**
   * The VM behind `vmId`. First its socket from the state file alone (one inspect: a view on a host with many
   * VMs does not inspect them all); when that socket no longer runs that VM, every socket (#resolveAll).
   */
  async #resolve(vmId: string): Promise<Resolved & { kind: 'live' | 'stopped' }> {
    const quick = await this.#quick(vmId);
    if (quick) return quick;
    const all = await this.#resolveAll();
    const hit = all.find((r) => (r.kind === 'live' && r.vm.id === vmId) || (r.kind === 'stopped' && this.#state.state.vms[vmId] === r.known));
    if (hit && hit.kind !== 'unknown') return hit;
    const known = this.#state.state.vms[vmId];
    if (known && all.some((r) => r.socket === known.socket && r.kind === 'unknown')) {
      throw new SvError('SV_ERR_HYPERVISOR_VM_GONE', `VM ${vmId}: its QMP socket ${known.socket} does not answer`, { vmId, socket: known.socket });
    }
    throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `no VM ${vmId} behind the configured QMP sockets`, { vmId });
  }

  #idOf(known: KnownVm | undefined): string | undefined {
    return known ? Object.entries(this.#state.state.vms).find(([, v]) => v === known)?.[0] : undefined;
  }

  /** The live VM `vmId` behind its socket from the state file (one inspect), or undefined. */
  async #quick(vmId: string): Promise<(Resolved & { kind: 'live' }) | undefined> {
    const socket = this.#state.state.vms[vmId]?.socket;
    if (!socket) return undefined;
    const c = await this.#pool.connect(socket);
    if (!('client' in c)) return undefined;
    const vm = await inspectVm(c.client, (id, qdev) => this.#underFilter(id, qdev)).catch(() => undefined);
    if (vm?.id !== vmId) return undefined;
    this.#remember(vm, socket);
    return { kind: 'live', socket, qmp: c.client, vm };
  }

  #knownBySocket(socket: string): KnownVm | undefined {
    return Object.values(this.#state.state.vms).find((v) => v.socket === socket);
  }

  #remember(vm: LiveVm, socket: string): void {
    const disks = disksOf(vm);
    const prev = this.#state.state.vms[vm.id];
    if (prev && prev.socket === socket && prev.name === vm.name && JSON.stringify(prev.disks) === JSON.stringify(disks)) return;
    this.#state.update((s) => {
      for (const [id, v] of Object.entries(s.vms)) if (v.socket === socket && id !== vm.id) delete s.vms[id];
      s.vms[vm.id] = { name: vm.name, socket, disks };
    });
  }

  #underFilter(vmId: string, qdev: string): string | undefined {
    for (const v of Object.values(this.#state.state.views)) {
      if (v.vmId !== vmId) continue;
      const d = v.disks.find((x) => x.qdev === qdev);
      if (d) return d.node;
    }
    return undefined;
  }
}
