/**
 * ReplicaDriver: the replica VMs an administrator declared on this secondary host (`agent --replica SPEC`,
 * config.ts), added to the VMs of the host's own driver (the wrapped one; null when the host runs none).
 *
 *   listVms          the wrapped driver's VMs, then one VM per replica: state 'stopped' (a replica does not
 *                    run here), `replica: {state, primary, reason}` (status.ts), its disk as the replica's
 *                    qemu-storage-daemon (qsd) has it; a qsd that does not answer → 'unknown' with the error
 *   checkOnline      a replica: not possible (vm-running); others: the wrapped driver
 *   createView       a replica: ReplicaView (view.ts; one at a time per replica); others: the wrapped driver
 *   cleanupLeftovers the wrapped driver's, then per replica the fences a killed run left and its tracking
 *                    bitmaps (fence.ts)
 *
 * One QMP client per socket (qsd and primary, QmpPool): QEMU serves one client per monitor, so the primary
 * needs a monitor for this agent beside the one its own agent uses.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { queryNamedBlockNodes } from '../../qemu/qmp-commands.js';
import type { CleanupReport, HypervisorDriver, ImportRequest, ImportResult, OnlineCheck, PointInTimeView, ReplicaInfo, ViewRequest, VmDisk, VmInfo } from '../driver.js';
import { which } from '../qemu/driver.js';
import { wireOf } from '../qemu/errors.js';
import { isTrackingBitmap } from '../qemu/names.js';
import { QmpPool } from '../qemu/sockets.js';
import type { ReplicaConfig } from './config.js';
import { cleanupFences } from './fence.js';
import { replicationState } from './status.js';
import { ReplicaView } from './view.js';

export interface ReplicaDriverOptions {
  readonly inner: HypervisorDriver | null;
  readonly replicas: readonly ReplicaConfig[];
  /** Folder for the fence overlays (`<stateDir>/<replica name>/`). */
  readonly stateDir: string;
  readonly qemuImg?: string;
}

const NO_GUEST = { present: false, answering: false } as const;

export class ReplicaDriver implements HypervisorDriver {
  readonly #o: ReplicaDriverOptions;
  readonly #pool: QmpPool;
  readonly #views = new Map<string, ReplicaView>();
  /** Replica id → token of its open view. */
  readonly #open = new Map<string, string>();
  #version = 'unknown';

  constructor(opts: ReplicaDriverOptions) {
    this.#o = opts;
    this.#pool = new QmpPool({ onGreeting: (c) => {
      const v = c.greeting.version.qemu;
      this.#version = `${v.major}.${v.minor}.${v.micro}`;
    } });
  }

  get hypervisor(): HypervisorDriver['hypervisor'] {
    return this.#o.inner?.hypervisor ?? { name: 'qemu', version: this.#version };
  }

  async listVms(): Promise<VmInfo[]> {
    const out = this.#o.inner ? await this.#o.inner.listVms() : [];
    for (const c of this.#o.replicas) {
      const base = { id: c.id, name: c.name, guestAgent: NO_GUEST };
      try {
        const disk = await this.#disk(c);
        out.push({ ...base, state: 'stopped', replica: await this.#state(c), disks: [disk] });
      } catch (err) {
        out.push({ ...base, state: 'unknown', replica: { state: 'unknown', primary: { qmp: c.primary, job: c.job }, reason: `the replica's qemu-storage-daemon does not answer` }, disks: [], error: wireOf(err) });
      }
    }
    return out;
  }

  async checkOnline(vmId: string, opts: { allowOnline?: boolean } = {}): Promise<OnlineCheck> {
    const c = this.#replica(vmId);
    if (!c) return this.#inner(vmId).checkOnline(vmId, opts);
    return { possible: false, unmet: [{ requirement: 'vm-running', reason: 'a replica VM does not run on this host: its points are crash-consistent copies of the replicated disk' }] };
  }

  async createView(vmId: string, req: ViewRequest): Promise<PointInTimeView> {
    const c = this.#replica(vmId);
    if (!c) return this.#inner(vmId).createView(vmId, req);
    const open = this.#open.get(c.id);
    if (open) throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `replica VM ${c.name}: view ${open} is still open (release it first)`, { vmId, open });
    const view = await ReplicaView.create({
      config: c, qsd: await this.#qmp(c.qsd), disk: await this.#disk(c), scratchDir: this.#scratch(c), qemuImg: this.#o.qemuImg ?? which('qemu-img'),
      state: () => this.#state(c),
      onCreated: (t) => this.#open.set(c.id, t),
      onReleased: (t) => {
        this.#views.delete(t);
        if (this.#open.get(c.id) === t) this.#open.delete(c.id);
      },
    }, req);
    this.#views.set(view.token, view);
    return view;
  }

  /** A replica is not a VM registry: nothing can be imported into it. */
  /** Imports belong to the host's own hypervisor (the wrapped driver); a host with replicas only has none. */
  async importVm(req: ImportRequest): Promise<ImportResult> {
    if (this.#o.inner) return this.#o.inner.importVm(req);
    throw new SvError('SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', 'this host declares replicas only (no hypervisor driver of its own): it cannot import a VM; restore the configuration and disks as files (restore --config-to DIR)', { folder: req.folder });
  }

  async cleanupLeftovers(): Promise<CleanupReport> {
    const inner = this.#o.inner ? await this.#o.inner.cleanupLeftovers() : { removed: [], errors: [] };
    const removed = [...inner.removed];
    const errors = [...inner.errors];
    for (const c of this.#o.replicas) {
      try {
        const open = this.#open.get(c.id);
        removed.push(...await cleanupFences({ qsd: await this.#qmp(c.qsd), node: c.node, scratchDir: this.#scratch(c) }, new Set(open ? [open] : [])));
      } catch (err) {
        errors.push({ what: `replica ${c.name}`, ...wireOf(err) });
      }
    }
    return { removed, errors };
  }

  async close(): Promise<void> {
    for (const v of [...this.#views.values()]) await v.release().catch(() => undefined);
    await this.#o.inner?.close();
    this.#pool.close();
  }

  #replica(vmId: string): ReplicaConfig | undefined {
    return this.#o.replicas.find((c) => c.id === vmId);
  }

  #inner(vmId: string): HypervisorDriver {
    if (this.#o.inner) return this.#o.inner;
    throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `no VM ${vmId} on this host (only replicas are declared here)`, { vmId });
  }

  #scratch(c: ReplicaConfig): string {
    const dir = join(this.#o.stateDir, c.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  async #qmp(socket: string): Promise<QmpClient> {
    const r = await this.#pool.connect(socket);
    if ('client' in r) return r.client;
    throw r.error;
  }

  async #state(c: ReplicaConfig): Promise<ReplicaInfo> {
    const primary = await this.#pool.connect(c.primary);
    return replicationState(c, 'client' in primary ? primary.client : primary.error);
  }

  /** The replica's disk as its qsd has it (the node named in the declaration). */
  async #disk(c: ReplicaConfig): Promise<VmDisk> {
    const nodes = await queryNamedBlockNodes(await this.#qmp(c.qsd));
    const node = nodes.find((n) => n['node-name'] === c.node);
    if (!node) throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `replica ${c.name}: qemu-storage-daemon ${c.qsd} has no node ${c.node}`, { vmId: c.id, node: c.node });
    const bitmaps = (node['dirty-bitmaps'] ?? []).filter((m) => isTrackingBitmap(m.name));
    return {
      key: c.node, device: c.node, format: node.drv, virtualSize: node.image['virtual-size'], path: node.file, identity: `replica:${node.file}`, snapshottable: true,
      // in qsd's memory only: a restarted qsd starts without (the next backup compares digests at the source)
      tracking: { state: bitmaps.some((b) => b.recording) ? 'recording' : 'none', persistent: false },
    };
  }
}
