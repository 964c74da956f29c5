/** The online-backup requirements of ONLINE_REQUIREMENTS, checked for one running QEMU VM. */
import { SvError } from '../../errors/index.js';
import type { OnlineCheck, UnmetRequirement, ViewRequest } from '../driver.js';
import type { GuestAgentProbe, LiveVm } from './inspect.js';

export function onlineCheck(vm: LiveVm, ga: GuestAgentProbe, allowOnline: boolean): OnlineCheck {
  const unmet: UnmetRequirement[] = [];
  if (!ga.present) unmet.push({ requirement: 'guest-agent', reason: `no guest agent channel (${ga.error ?? 'org.qemu.guest_agent.0 not found'})` });
  else if (!ga.answering) unmet.push({ requirement: 'guest-agent', reason: `the guest agent does not answer guest-ping (${ga.error ?? 'no answer'})` });
  if (ga.answering && !ga.freezeSupported) unmet.push({ requirement: 'guest-freeze', reason: 'the guest agent does not offer guest-fsfreeze-freeze (disabled or unsupported)' });
  else if (!ga.answering) unmet.push({ requirement: 'guest-freeze', reason: 'unknown whether the guest can freeze: its agent does not answer' });
  if (vm.state !== 'running') unmet.push({ requirement: 'vm-running', reason: `the VM is ${vm.state} (QEMU run state ${vm.runState})` });
  for (const d of vm.disks) if (!d.snapshottable) unmet.push({ requirement: 'disks-snapshottable', reason: d.reason ?? `disk ${d.key} cannot be snapshotted` });
  if (!allowOnline) unmet.push({ requirement: 'online-allowed', reason: 'online backup is not allowed for this VM (source option)' });
  return { possible: unmet.length === 0, unmet };
}

/**
 * Online or offline for a view request: online when asked or allowed and possible; an online request that is
 * not possible is SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE with every unmet requirement. `reasons` say why a point
 * is offline (empty when online).
 */
export function chooseMode(vm: LiveVm, ga: GuestAgentProbe, req: ViewRequest): { online: boolean; reasons: string[] } {
  const check = onlineCheck(vm, ga, req.allowOnline !== false);
  if (req.mode === 'online' && !check.possible) {
    throw new SvError('SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE', `VM ${vm.name} (${vm.id}): online backup not possible: ${check.unmet.map((u) => u.reason).join('; ')}`, { vmId: vm.id, unmet: check.unmet });
  }
  const online = req.mode !== 'offline' && check.possible;
  return { online, reasons: online ? [] : req.mode === 'offline' ? ['offline mode requested'] : check.unmet.map((u) => u.reason) };
}
