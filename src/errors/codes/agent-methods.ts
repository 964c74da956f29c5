import type { ErrorTable } from '../spec.js';

/**
 * Errors of the agent's methods (src/agent/methods/: views, ranges, restore-to-host) and of the appliance's
 * side of them (src/sources/agent.ts, VM-source jobs). Part of the AGENT area; the transport's own codes
 * (framing, pairing, connection; and SV_ERR_AGENT_BAD_PARAMS, which the methods raise too) are in agent.ts.
 */
export const AGENT_METHOD_ERRORS = {
  SV_ERR_AGENT_UNKNOWN_SESSION: { status: 404, summary: 'The agent has no view session with that id (never opened, released, or closed after its idle timeout); details name the session.' },
  SV_ERR_AGENT_BAD_ANSWER: { status: 502, summary: 'An agent answered with a malformed result or payload (a view.range record out of order or out of range, a bad flag, length or digest, a payload that does not match its digest, extents that do not cover the disk, a read of the wrong length); nothing of it was stored.' },
  SV_ERR_AGENT_VM_NOT_HOSTED: { status: 403, summary: 'The VM is not hosted by that agent (per the agent\'s own driver, or per the appliance\'s inventory): an agent only serves and sends blocks of its own VMs.' },
  SV_ERR_AGENT_NO_HOST: { status: 409, summary: 'No connected agent currently reports the VM of this data source (its host is down, the agent is not connected, or the VM is gone).' },
  SV_ERR_AGENT_VM_MIGRATING: { status: 503, summary: 'The VM is between hosts right now (the destination of a live migration reports it arriving, or the source reports it gone), or a host that may run it cannot inspect it right now (its QMP socket does not answer): nothing is backed up from either side; retry when the migration is over or that host answers.' },
  SV_ERR_AGENT_VM_AMBIGUOUS: { status: 409, summary: 'Several hosts report the VM running at once (two VMs with one id, or a split brain), or stopped on hosts that share no cluster: the appliance does not guess which side to back up.' },
  SV_ERR_AGENT_VM_OWNED: { status: 409, summary: 'The VM is protected by another appliance (its ownership record, kept next to its disks on the host side, names that appliance): this appliance does not back it up, restore to it or protect it until the owner releases it (removing its data source there), or an admin takes it over (`sources add --vm VM --take-over`); details name the owner.' },
  SV_ERR_AGENT_OWNER_RECORD: { status: 500, summary: 'A VM\'s ownership record (`.shadowvault-owner.<vm>.json` next to its first disk) cannot be read, written or removed, or is malformed; details name the file. Nothing was changed.' },
  SV_ERR_AGENT_RESTORE_FAILED: { status: 500, summary: 'Writing a restored disk on the host failed (unknown handle, write past the disk size, unsupported format, or the file could not be placed next to the VM\'s disks).' },
} as const satisfies ErrorTable;
