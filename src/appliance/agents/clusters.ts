/**
 * The cluster query (GET /api/v1/clusters, `shadowvault clusters`): per cluster, its nodes, its VMs, the node
 * that runs each VM (placement.ts, the same rule the backup jobs follow), every node that reports the VM and
 * in which state (a live migration shows as two sightings), and the VM's protection: its data source, its
 * last recovery point, its last backup job. Hosts without a cluster are not listed here (`shadowvault hosts`).
 *
 * A VM is listed under the cluster of the node that runs it; when no node can be chosen (migrating,
 * ambiguous, every node offline), under each cluster with a node that reports it.
 */
import { SvError, toWire, type WireError } from '../../errors/index.js';
import type { MigrationRole } from '../../hypervisor/driver.js';
import type { DataSource, Job } from '../model.js';
import type { HostView, VmView } from './inventory.js';
import { placeVm } from './placement.js';

export type ProtectionState = 'unprotected' | 'not-backed-up-yet' | 'protected' | 'failing';

export interface ClusterVm {
  id: string;
  name: string;
  /** The node that runs the VM (where its backups run), or null with `placementError`. */
  runsOn: { hostId: string; host: string } | null;
  placementError?: WireError;
  /** Every node that reports the VM (connected or not). */
  seenOn: Array<{ hostId: string; host: string; connected: boolean; state: string; migration?: MigrationRole }>;
  protection: {
    state: ProtectionState;
    source: { id: string; name: string } | null;
    lastPoint: { id: string; time: string; consistency?: string } | null;
    lastJob: { id: string; state: string; finishedAt?: string; error?: { code: string; message: string } } | null;
    /** The appliance that owns the VM (its host's ownership record; null: none), as `vms` shows it. */
    protectedBy: VmView['protectedBy'] | null;
  };
}

export interface ClusterView {
  name: string;
  nodes: Array<{ id: string; name: string; connected: boolean; runs: number }>;
  vms: ClusterVm[];
}

export interface ClusterInputs {
  readonly hosts: readonly HostView[];
  readonly vms: readonly VmView[];
  readonly sources: readonly DataSource[];
  readonly jobs: readonly Job[];
  readonly lastPoint: (sourceName: string) => Promise<{ id: string; time: string; consistency?: string } | undefined>;
}

function protectionState(source: DataSource | undefined, lastPoint: unknown, lastJob: Job | undefined): ProtectionState {
  if (!source) return 'unprotected';
  if (lastJob?.state === 'failed') return 'failing';
  return lastPoint ? 'protected' : 'not-backed-up-yet';
}

export async function buildClusters(i: ClusterInputs): Promise<ClusterView[]> {
  const clusterOf = new Map(i.hosts.map((h) => [h.id, h.cluster]));
  const byCluster = new Map<string, ClusterView>();
  for (const h of i.hosts) {
    if (h.cluster === null) continue;
    const c = byCluster.get(h.cluster) ?? { name: h.cluster, nodes: [], vms: [] };
    c.nodes.push({ id: h.id, name: h.name, connected: h.connected, runs: 0 });
    byCluster.set(h.cluster, c);
  }
  const ids = [...new Set(i.vms.map((v) => v.id))].sort();
  for (const id of ids) {
    const sightings = i.vms.filter((v) => v.id === id);
    const homes = new Set(sightings.map((v) => clusterOf.get(v.hostId) ?? null).filter((c): c is string => c !== null));
    if (homes.size === 0) continue;
    let runsOn: ClusterVm['runsOn'] = null;
    let placementError: WireError | undefined;
    try {
      const live = sightings.filter((v) => v.hostConnected);
      if (live.length === 0) throw new SvError('SV_ERR_AGENT_NO_HOST', `VM ${id}: no node that reports it is connected`, { vmId: id });
      const at = placeVm(id, live).at;
      runsOn = { hostId: at.hostId, host: at.host };
    } catch (err) {
      placementError = toWire(err);
    }
    const source = i.sources.find((s) => s.vm?.id === id);
    const lastJob = source ? [...i.jobs].reverse().find((j) => j.sourceId === source.id && j.kind === 'backup' && (j.state === 'succeeded' || j.state === 'failed')) : undefined;
    const lastPoint = source ? await i.lastPoint(source.name) : undefined;
    const first = sightings[0]!;
    const vm: ClusterVm = {
      id, name: (sightings.find((v) => v.hostId === runsOn?.hostId) ?? first).name, runsOn, ...(placementError ? { placementError } : {}),
      seenOn: sightings.map((v) => ({ hostId: v.hostId, host: v.host, connected: v.hostConnected, state: v.state, ...(v.migration ? { migration: v.migration } : {}) })),
      protection: {
        state: protectionState(source, lastPoint, lastJob),
        source: source ? { id: source.id, name: source.name } : null,
        lastPoint: lastPoint ?? null,
        lastJob: lastJob ? { id: lastJob.id, state: lastJob.state, ...(lastJob.finishedAt ? { finishedAt: lastJob.finishedAt } : {}), ...(lastJob.error ? { error: { code: lastJob.error.code, message: lastJob.error.message } } : {}) } : null,
        protectedBy: (sightings.find((v) => v.hostId === runsOn?.hostId) ?? first).protectedBy ?? null,
      },
    };
    const home = runsOn ? clusterOf.get(runsOn.hostId) ?? null : null;
    for (const name of home !== null ? [home] : runsOn ? [] : [...homes]) {
      const c = byCluster.get(name);
      if (!c) continue;
      c.vms.push(vm);
      const node = c.nodes.find((n) => n.id === runsOn?.hostId);
      if (node) node.runs++;
    }
  }
  return [...byCluster.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}
