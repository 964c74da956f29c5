/**
 * The appliance's side of VM ownership (the record itself is the host's: src/agent/owner.ts). A VM source is
 * claimed on the host when it is added (`sources add --vm`, with `takeOver` an admin's forced takeover) and
 * released when it is removed, through the agent of a host that reports the VM (every node of a cluster sees the
 * same record on the shared storage).
 *
 * Contract:
 * - claim: the host's answer (the record, and the previous owner after a takeover); SV_ERR_AGENT_VM_OWNED when
 *   another appliance owns it (the only refusal); `undefined` when the host cannot be asked now (its agent is
 *   not connected, or too old to keep records) or cannot write the record (SV_ERR_AGENT_OWNER_RECORD: a
 *   read-only folder, a damaged record): logged, the add goes on, and the agent claims the VM again before
 *   its first backup (it claims a VM nobody owns before it opens a view of it). A takeover (`takeOver`) that
 *   cannot be recorded on the host throws that error instead: the source is not added, nothing changed.
 *   The claim is made before the source is saved, so an intent to release the VM is saved durably before the
 *   host is asked and kept until the caller says the source is saved (`kept`): an appliance killed between the
 *   two releases the claim it made for a source it never saved (a retry, below, finds the VM not protected
 *   here), instead of leaving the VM owned by an appliance that does not protect it. A claim that throws drops
 *   the intent it saved.
 * - release: never throws (logged). The intent is saved durably first (owner-releases.json; `intendRelease`
 *   lets the caller save it before it removes the source, so that an appliance killed in between still
 *   releases; from then until `release`, or `kept` when the source could not be removed, a retry leaves the VM
 *   alone: it would find the source not removed yet and drop the intent), then the hosts that report the VM are asked; the first answer (released, or nothing to release:
 *   another appliance took it over meanwhile) ends it. Otherwise (its agent down or disconnected) `retry(agentId)`
 *   (called after each inventory push) releases it through the first such host that reports the VM again. A
 *   claim of the same VM by this appliance (the source added again) drops the intent, and so does a retry that
 *   finds the VM still protected here (`protectedHere`: the appliance died before the source was removed).
 */
import type { Logger } from 'pino';
import { hasCode, toWire } from '../errors/index.js';
import type { OwnerRecord } from '../agent/owner.js';
import type { AgentRpc } from '../agent/rpc.js';
import type { JsonDocument } from './durable.js';

/** A release that no host could take yet. */
export interface PendingRelease {
  readonly vmId: string;
  /** When the source was removed (ISO time). */
  readonly since: string;
}

export interface OwnerOps {
  /** Claim for a source about to be saved; call `kept(vm.id)` once it is (or `release` when it cannot be). */
  claim(vm: { readonly id: string; readonly hostId: string }, takeOver: boolean): Promise<{ owner: OwnerRecord; previous?: OwnerRecord } | undefined>;
  /** The source of a VM claimed with `claim` is saved (or, after `intendRelease`, could not be removed): drop the intent to release it. */
  kept(vmId: string): Promise<void>;
  release(vmId: string): Promise<void>;
  /** Save the intent to release `vmId` (before the source goes); release() does the rest, or kept() drops it when the source stays. */
  intendRelease(vmId: string): Promise<void>;
  /** Retry the pending releases of the VMs `agentId` reports (after its inventory push). */
  retry(agentId: string): Promise<void>;
}

/** Calls that did not reach a host able to answer (offline, disconnected, an agent without ownership records). */
const UNREACHED = ['SV_ERR_AGENT_OFFLINE', 'SV_ERR_AGENT_DISCONNECTED', 'SV_ERR_AGENT_UNKNOWN_METHOD', 'SV_ERR_AGENT_KEEPALIVE', 'SV_ERR_CORE_CANCELLED'] as const;
const CALL_MS = 15_000;

export function ownerOps(rpc: AgentRpc, sightings: (vmId: string) => readonly string[], log: Logger, pending: JsonDocument<PendingRelease[]>, protectedHere: (vmId: string) => boolean = () => false): OwnerOps {
  const busy = new Set<string>();
  const forget = async (vmId: string): Promise<void> => {
    if (pending.value.some((p) => p.vmId === vmId)) await pending.save(pending.value.filter((p) => p.vmId !== vmId));
  };
  const intend = async (vmId: string): Promise<void> => {
    if (!pending.value.some((p) => p.vmId === vmId)) await pending.save([...pending.value, { vmId, since: new Date().toISOString() }]);
  };
  /** Through the hosts that report the VM (or only `via`): true once one answered. */
  const releaseThrough = async (vmId: string, hosts: readonly string[]): Promise<boolean> => {
    for (const agentId of hosts) {
      try {
        const r = (await rpc.call(agentId, 'owner.release', { vmId }, undefined, AbortSignal.timeout(CALL_MS))).result;
        log.info({ vmId, agentId, released: r.released }, r.released ? 'VM ownership released' : 'VM ownership: nothing to release (none, or another appliance owns it)');
        return true;
      } catch (err) {
        log.warn({ vmId, agentId, err: toWire(err) }, 'cannot release the VM ownership through this host');
      }
    }
    return false;
  };
  return {
    async claim(vm, takeOver) {
      busy.add(vm.id); // until kept() or release(): a retry meanwhile would release the claim being made
      try {
        await intend(vm.id); // an existing intent (the source removed earlier) is the same one: kept() drops it
      } catch (err) {
        busy.delete(vm.id);
        throw err;
      }
      try {
        return (await rpc.call(vm.hostId, 'owner.claim', { vmId: vm.id, ...(takeOver ? { takeOver: true } : {}) }, undefined, AbortSignal.timeout(CALL_MS))).result;
      } catch (err) {
        // a takeover is recorded on the host or not at all: added without it, the source's first backup would
        // claim a VM another appliance owns and be refused, the admin's takeover silently lost
        if (takeOver || (!UNREACHED.some((c) => hasCode(err, c)) && !hasCode(err, 'SV_ERR_AGENT_OWNER_RECORD'))) {
          busy.delete(vm.id);
          await forget(vm.id).catch((e: unknown) => log.warn({ vmId: vm.id, err: toWire(e) }, 'cannot drop the intent of a refused claim'));
          throw err;
        }
        log.warn({ vmId: vm.id, agentId: vm.hostId, err: toWire(err) }, 'cannot claim the VM on its host now: its agent claims it again before its first backup');
        return undefined;
      }
    },
    async kept(vmId) {
      try {
        await forget(vmId);
      } catch (err) {
        // left pending, a retry finds the VM protected here and drops it
        log.warn({ vmId, err: toWire(err) }, 'cannot drop the intent of a claim whose source is saved');
      } finally {
        busy.delete(vmId);
      }
    },
    async release(vmId) {
      busy.add(vmId);
      try {
        await intend(vmId);
        if (await releaseThrough(vmId, sightings(vmId))) return await forget(vmId);
        log.warn({ vmId }, 'VM ownership not released yet: no host that reports the VM answered; kept, and retried when one connects');
      } catch (err) {
        log.error({ vmId, err: toWire(err) }, 'cannot keep the pending release of the VM ownership');
      } finally {
        busy.delete(vmId);
      }
    },
    async intendRelease(vmId) {
      busy.add(vmId); // until release() or kept(): a retry meanwhile finds the source still here and drops the intent
      try {
        await intend(vmId);
      } catch (err) {
        busy.delete(vmId);
        throw err;
      }
    },
    async retry(agentId) {
      for (const p of pending.value) {
        if (busy.has(p.vmId)) continue;
        if (protectedHere(p.vmId)) {
          await forget(p.vmId).catch((err: unknown) => log.warn({ vmId: p.vmId, err: toWire(err) }, 'cannot drop the pending release of a VM protected here'));
          continue;
        }
        if (!sightings(p.vmId).includes(agentId)) continue;
        busy.add(p.vmId);
        try {
          if (await releaseThrough(p.vmId, [agentId])) await forget(p.vmId);
        } catch (err) {
          log.error({ vmId: p.vmId, err: toWire(err) }, 'cannot drop a finished pending release');
        } finally {
          busy.delete(p.vmId);
        }
      }
    },
  };
}
