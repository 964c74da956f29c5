/**
 * Where a VM runs, when several hosts report it (a live migration in progress, or one just finished on shared
 * storage where the old host still remembers the VM as stopped). Pure: the inputs are the hosts' last reports.
 *
 * Each report of the VM is ranked by what it says about THIS host:
 *   RUNS (3)   running or paused, no migration, or the source of a migration still in progress ('outgoing');
 *   FILES (2)  stopped or crashed: no QEMU runs it here, its disk files are reachable from here;
 *   ARRIVING (1) the destination of a migration ('incoming', or state 'migrating' without a role);
 *   LEFT (0)   the source after the switch-over ('completed'), or a VM that could not be inspected.
 * The best rank wins when one report holds it. Ties:
 *   - RUNS on several hosts: the VM runs twice (two VMs with one id, or a split brain): SV_ERR_AGENT_VM_AMBIGUOUS,
 *     nothing is backed up (from which side would be a guess);
 *   - FILES on several hosts: the VM runs nowhere; hosts of one cluster share its storage, so any of them
 *     reads the same files (the first by host name); across clusters, SV_ERR_AGENT_VM_AMBIGUOUS;
 *   - best rank ARRIVING or LEFT: the VM is between hosts right now: SV_ERR_AGENT_VM_MIGRATING (retry later).
 * A host whose agent cannot inspect the VM right now (state 'unknown': its QMP socket does not answer, e.g. a
 * QEMU too busy to answer in time) may still run it: while one does, a FILES host does not win either (it would
 * read the disk files of a VM that runs elsewhere): SV_ERR_AGENT_VM_MIGRATING too, retried when it answers.
 * So a VM is never backed up twice, nor from the side it is leaving or has not reached.
 */
import { SvError } from '../../errors/index.js';
import type { MigrationRole } from '../../hypervisor/driver.js';

export interface VmSighting {
  readonly hostId: string;
  readonly host: string;
  readonly cluster: string | null;
  readonly state: string;
  readonly migration?: MigrationRole;
}

export const RUNS = 3;
export const FILES = 2;
export const ARRIVING = 1;
export const LEFT = 0;

export function rank(s: Pick<VmSighting, 'state' | 'migration'>): number {
  if (s.migration === 'completed') return LEFT;
  if (s.migration === 'incoming') return ARRIVING;
  if (s.migration === 'outgoing') return RUNS;
  if (s.state === 'running' || s.state === 'paused') return RUNS;
  if (s.state === 'stopped' || s.state === 'crashed') return FILES;
  if (s.state === 'migrating') return ARRIVING;
  return LEFT;
}

/** How a VM's host was chosen, for the job log and the cluster query. */
export interface Placement<S extends VmSighting> {
  readonly at: S;
  /** The other hosts that report the VM, and why they lost. */
  readonly others: ReadonlyArray<{ readonly sighting: S; readonly why: string }>;
}

const WHY = ['it left (migration completed) or cannot be inspected', 'it is arriving (destination of a migration)', 'it is not running there', 'it runs there'];

/** The host that runs `vmId` among `sightings` (all of the same VM, non-empty); see the top comment. */
export function placeVm<S extends VmSighting>(vmId: string, sightings: readonly S[]): Placement<S> {
  if (sightings.length === 0) throw new SvError('SV_ERR_AGENT_NO_HOST', `VM ${vmId}: no agent reports it`, { vmId, hosts: [] });
  const best = Math.max(...sightings.map(rank));
  const top = sightings.filter((s) => rank(s) === best).sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  const hosts = sightings.map((s) => `${s.host} (${s.state}${s.migration ? `, migration ${s.migration}` : ''})`).join(', ');
  const unsure = sightings.filter((s) => s.state === 'unknown' && s.migration === undefined);
  if (best <= FILES && unsure.length > 0) {
    throw new SvError('SV_ERR_AGENT_VM_MIGRATING', `VM ${vmId} cannot be inspected on ${unsure.map((s) => s.host).join(', ')} right now (its QMP socket does not answer), so it may run there (${hosts}): nothing is backed up until that host answers`, { vmId, hosts: sightings.map((s) => s.host) });
  }
  if (best <= ARRIVING) {
    throw new SvError('SV_ERR_AGENT_VM_MIGRATING', `VM ${vmId} is between hosts right now (${hosts}): retry when the migration is over`, { vmId, hosts: sightings.map((s) => s.host) });
  }
  if (top.length > 1) {
    const oneCluster = top[0]!.cluster !== null && top.every((s) => s.cluster === top[0]!.cluster);
    if (best === RUNS || !oneCluster) {
      throw new SvError('SV_ERR_AGENT_VM_AMBIGUOUS', `VM ${vmId} ${best === RUNS ? 'runs on' : 'is stopped on'} ${top.length} hosts at once (${hosts})${best === RUNS ? ': two VMs with one id, or a split brain' : ' that share no cluster'}; nothing is backed up until one host reports it`, { vmId, hosts: top.map((s) => s.host) });
    }
  }
  const at = top[0]!;
  return { at, others: sightings.filter((s) => s !== at).map((s) => ({ sighting: s, why: s.cluster === at.cluster && rank(s) === best ? 'same cluster, same files' : WHY[rank(s)]! })) };
}
