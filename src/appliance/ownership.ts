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
 *   its first backup (it claims a VM nobody owns before it opens a view of it).
 * - release: best effort, never throws (logged): a host that cannot be reached keeps the record, and the
 *   other appliance needs a takeover until this one's agent releases it.
 */
import type { Logger } from 'pino';
import { hasCode, toWire } from '../errors/index.js';
import type { OwnerRecord } from '../agent/owner.js';
import type { AgentRpc } from '../agent/rpc.js';

export interface OwnerOps {
  claim(vm: { readonly id: string; readonly hostId: string }, takeOver: boolean): Promise<{ owner: OwnerRecord; previous?: OwnerRecord } | undefined>;
  release(vmId: string): Promise<void>;
}

/** Calls that did not reach a host able to answer (offline, disconnected, an agent without ownership records). */
const UNREACHED = ['SV_ERR_AGENT_OFFLINE', 'SV_ERR_AGENT_DISCONNECTED', 'SV_ERR_AGENT_UNKNOWN_METHOD', 'SV_ERR_AGENT_KEEPALIVE', 'SV_ERR_CORE_CANCELLED'] as const;
const CALL_MS = 15_000;

export function ownerOps(rpc: AgentRpc, sightings: (vmId: string) => readonly string[], log: Logger): OwnerOps {
  return {
    async claim(vm, takeOver) {
      try {
        return (await rpc.call(vm.hostId, 'owner.claim', { vmId: vm.id, ...(takeOver ? { takeOver: true } : {}) }, undefined, AbortSignal.timeout(CALL_MS))).result;
      } catch (err) {
        if (!UNREACHED.some((c) => hasCode(err, c)) && !hasCode(err, 'SV_ERR_AGENT_OWNER_RECORD')) throw err;
        log.warn({ vmId: vm.id, agentId: vm.hostId, err: toWire(err) }, 'cannot claim the VM on its host now: its agent claims it again before its first backup');
        return undefined;
      }
    },
    async release(vmId) {
      for (const agentId of sightings(vmId)) {
        try {
          const r = (await rpc.call(agentId, 'owner.release', { vmId }, undefined, AbortSignal.timeout(CALL_MS))).result;
          log.info({ vmId, agentId, released: r.released }, r.released ? 'VM ownership released' : 'VM ownership: nothing to release (none, or another appliance owns it)');
          return;
        } catch (err) {
          log.warn({ vmId, agentId, err: toWire(err) }, 'cannot release the VM ownership through this host');
        }
      }
      log.warn({ vmId }, 'VM ownership not released: no host that reports the VM answered (another appliance needs a takeover until it is)');
    },
  };
}
