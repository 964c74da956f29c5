/**
 * The inventory store: each agent's last report (hosts and their VMs), persisted in inventory.json so that
 * `hosts`/`vms` show the last known state while an agent is away (with `connected: false`).
 * Scope: an agent reports only its own host. A report naming the host of another agent (not revoked) is
 * SV_ERR_AGENT_SCOPE and changes nothing; so is a VM running that another connected agent of another
 * cluster reports running right now (see checkScope).
 */
import { SvError } from '../../errors/index.js';
import type { InventoryReport } from '../../agent/rpc.js';
import type { MigrationRole, ReplicaInfo } from '../../hypervisor/driver.js';
import type { StateDb } from '../state.js';
import type { AgentRecord, HostInventory } from './model.js';
import { rank, RUNS } from './placement.js';

export interface HostView {
  id: string;
  name: string;
  cluster: string | null;
  agentVersion: string;
  hypervisor: { name: string; version: string };
  connected: boolean;
  lastSeenAt: string | null;
  reportedAt: string | null;
  vms: number;
  /** A file server's agent: the SMB shares it serves. */
  shares?: string[];
}

export interface VmView {
  id: string;
  name: string;
  host: string;
  hostId: string;
  hostConnected: boolean;
  /** The host's cluster (null: a standalone host). */
  cluster: string | null;
  state: string;
  /** This host's side of a live migration of the VM (absent: none). */
  migration?: MigrationRole;
  /** A replica VM: its replication state (absent: not a replica). */
  replica?: ReplicaInfo;
  disks: HostInventory['vms'][number]['disks'];
  guestAgent: HostInventory['vms'][number]['guestAgent'];
  online: { possible: boolean; unmet: string[]; details: { requirement: string; reason: string; share?: string; folder?: string; right?: string }[] };
  error?: { code: string; message: string };
  /**
   * The appliance that protects the VM, from the ownership record its host reports (src/agent/owner.ts);
   * null: none. `here`: this appliance. `takenOverFrom`: an admin's forced takeover, from whom and when.
   */
  protectedBy?: { id: string; name: string; here: boolean; since: string; takenOverFrom?: { id: string; name: string; at: string } } | null;
}

export class InventoryStore {
  readonly #db: StateDb;
  readonly #now: () => number;

  constructor(db: StateDb, now: () => number) {
    this.#db = db;
    this.#now = now;
  }

  /**
   * Throws SV_ERR_AGENT_SCOPE when `report` names another agent's host, or a VM that another connected agent
   * reports running while this report has it running too, unless both hosts are of one (non-null) cluster:
   * a VM seen twice is a live migration (one side arriving or gone, placement.ts resolves it) or, in a
   * cluster, a case the placement refuses to guess about (SV_ERR_AGENT_VM_AMBIGUOUS at backup time).
   */
  checkScope(agent: AgentRecord, report: InventoryReport, others: readonly AgentRecord[], connected: (id: string) => boolean): void {
    const clash = others.find((a) => a.id !== agent.id && !a.revokedAt && a.name === report.host.name);
    if (clash) throw new SvError('SV_ERR_AGENT_SCOPE', `agent ${agent.id} reported host "${report.host.name}", which is agent ${clash.id}'s host`, { agentId: agent.id, host: report.host.name });
    for (const h of this.#db.inventory.value) {
      if (h.agentId === agent.id || !connected(h.agentId)) continue;
      const other = others.find((a) => a.id === h.agentId);
      if (agent.cluster !== null && other?.cluster === agent.cluster) continue;
      const vm = report.vms.find((v) => h.vms.some((o) => o.id === v.id && rank(o) === RUNS && rank(v) === RUNS));
      if (vm) throw new SvError('SV_ERR_AGENT_SCOPE', `agent ${agent.id} reported VM ${vm.id} running, which agent ${h.agentId} (host "${h.host.name}", another cluster) reports running`, { agentId: agent.id, vmId: vm.id });
    }
  }

  /** Store `report` as `agent`'s host inventory (after checkScope). The save is issued before this returns. */
  put(agent: AgentRecord, report: InventoryReport): Promise<void> {
    const entry: HostInventory = { agentId: agent.id, host: report.host, vms: [...report.vms], reportedAt: new Date(this.#now()).toISOString() };
    return this.#db.inventory.save([...this.#db.inventory.value.filter((h) => h.agentId !== agent.id), entry]);
  }

  async drop(agentId: string): Promise<void> {
    await this.#db.inventory.save(this.#db.inventory.value.filter((h) => h.agentId !== agentId));
  }

  hostOf(agentId: string): HostInventory | undefined {
    return this.#db.inventory.value.find((h) => h.agentId === agentId);
  }

  hosts(agents: readonly AgentRecord[], connected: (id: string) => boolean): HostView[] {
    return agents.filter((a) => !a.revokedAt).map((a) => {
      const inv = this.hostOf(a.id);
      return {
        id: a.id, name: a.name, cluster: a.cluster, agentVersion: a.agentVersion, hypervisor: a.hypervisor,
        connected: connected(a.id), lastSeenAt: a.lastSeenAt ?? null, reportedAt: inv?.reportedAt ?? null, vms: inv?.vms.length ?? 0,
        ...(inv?.host.fileServer ? { shares: [...inv.host.fileServer.shares] } : {}),
      };
    });
  }

  vms(agents: readonly AgentRecord[], connected: (id: string) => boolean, self?: string): VmView[] {
    const live = new Map(agents.filter((a) => !a.revokedAt).map((a) => [a.id, a]));
    const out: VmView[] = [];
    for (const h of this.#db.inventory.value) {
      const a = live.get(h.agentId);
      if (!a) continue;
      for (const v of h.vms) {
        out.push({
          id: v.id, name: v.name, host: a.name, hostId: a.id, hostConnected: connected(a.id), cluster: a.cluster, state: v.state, ...(v.migration ? { migration: v.migration } : {}),
          ...(v.replica ? { replica: v.replica } : {}),
          disks: v.disks, guestAgent: v.guestAgent,
          online: { possible: v.online.possible, unmet: v.online.unmet.map((u) => u.requirement), details: v.online.unmet.map(({ requirement, reason, share, folder, right }) => ({ requirement, reason, ...(share !== undefined ? { share, folder, right } : {}) })) },
          ...(v.error ? { error: v.error } : {}),
          protectedBy: v.owner ? {
            id: v.owner.appliance.id, name: v.owner.appliance.name, here: v.owner.appliance.id === self, since: v.owner.since,
            ...(v.owner.takenOverFrom ? { takenOverFrom: v.owner.takenOverFrom } : {}),
          } : null,
        });
      }
    }
    return out;
  }
}
