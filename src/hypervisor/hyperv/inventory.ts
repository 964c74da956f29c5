/**
 * Hyper-V host records (host.ts) → the driver interface's VmInfo and OnlineCheck (src/hypervisor/driver.ts).
 *
 * Disk key: `<controller><number>-<location>` (e.g. `scsi0-1`), stable while the VM's configuration is.
 * Identity: Get-VHD DiskIdentifier (VHDX Page83), the same through checkpoints and migrations.
 * Tracking: RCT needs configuration version >= 6.2 and a VHDX disk; otherwise the disk falls back to digest
 * comparison and `fallbackReason` says why (recorded in the view's reasons and in changes()).
 * Online requirements (DPM's list) → ONLINE_REQUIREMENTS:
 *   guest-agent          the Backup (volume shadow copy) integration service enabled and responding
 *   guest-freeze         the guest can take a VSS snapshot: each problem the integration service reports (dynamic
 *                        disks, a non-NTFS volume, the shadow storage assignment changed, no VSS) is one reason
 *   vm-running           the VM is running, and a clustered VM's resource group is online
 *   disks-snapshottable  no pass-through (physical) disk, and every disk on SCSI (DPM: online backup needs SCSI;
 *                        a generation 1 VM's IDE disks make it an offline backup)
 *   online-allowed       the per-source option
 * Clusters (the clusters work's placement, src/appliance/agents/placement.ts): a clustered VM is backed up by
 * the node that owns its cluster group (Get-ClusterGroup OwnerNode). Every other node that still lists it
 * reports it with migration 'completed' (the VM role runs elsewhere: placement ranks that report LEFT), so
 * the owner node's report wins; a live migration in progress (state Migrating) ranks as arriving and the
 * backup is retried after it. `ownedElsewhere` is the one test, shared by the driver's refusals.
 */
import type { OnlineCheck, UnmetRequirement, VmDisk, VmInfo, VmState } from '../driver.js';
import type { HvDisk, HvVm } from './host.js';

/** Checkpoints and reference points this driver made: ElementName starts with it. */
export const PREFIX = 'sv-';

export function diskKey(d: HvDisk): string {
  return `${d.controllerType.toLowerCase()}${d.controllerNumber}-${d.controllerLocation}`;
}

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a, b] = version.split('.').map(Number);
  return a! > major || (a === major && b! >= minor);
}

/** Why this disk cannot use RCT (digest comparison instead), or undefined when it can. */
export function fallbackReason(vm: HvVm, d: HvDisk): string | undefined {
  if (!versionAtLeast(vm.configurationVersion, 6, 2)) return `configuration version ${vm.configurationVersion} is older than 6.2: no resilient change tracking, digest comparison`;
  if (d.format !== 'VHDX') return `${d.format} disk ${d.path}: resilient change tracking needs VHDX, digest comparison`;
  return undefined;
}

const STATES: Record<HvVm['state'], VmState> = { Running: 'running', Off: 'stopped', Saved: 'paused', Paused: 'paused', Migrating: 'migrating', Other: 'unknown' };

/** Cluster node names compare as Windows does: case-insensitive, on the first DNS label. */
function nodeKey(name: string): string {
  return name.split('.')[0]!.toLowerCase();
}

/** The owner node of the clustered VM's group when it is another node than `nodeName`; else undefined. */
export function ownedElsewhere(vm: HvVm, nodeName: string): string | undefined {
  return vm.cluster && nodeKey(vm.cluster.ownerNode) !== nodeKey(nodeName) ? vm.cluster.ownerNode : undefined;
}

/**
 * `tracked`: identities of the disks this driver's last commit left a reference point for (state.ts);
 * `nodeName`: this host's cluster node name (see the top comment).
 */
export function vmInfo(vm: HvVm, tracked: ReadonlySet<string>, nodeName: string): VmInfo {
  const disks: VmDisk[] = vm.disks.map((d) => {
    const fallback = fallbackReason(vm, d);
    return {
      key: diskKey(d), device: diskKey(d), format: d.format === 'PassThrough' ? 'host_device' : d.format.toLowerCase(), virtualSize: d.virtualSize,
      path: d.path, identity: d.diskIdentifier, snapshottable: d.format !== 'PassThrough',
      ...(d.format === 'PassThrough' ? { reason: `${diskKey(d)} is a pass-through physical disk (cannot be checkpointed)` } : {}),
      tracking: fallback ? { state: 'unsupported', reason: fallback, persistent: true } : { state: tracked.has(d.diskIdentifier) ? 'recording' : 'none', persistent: true },
    };
  });
  return {
    id: vm.id, name: vm.name, state: STATES[vm.state], disks,
    ...(ownedElsewhere(vm, nodeName) !== undefined ? { migration: 'completed' as const } : {}),
    guestAgent: { present: vm.backup.enabled, answering: vm.backup.enabled && vm.backup.responding },
  };
}

export function onlineCheck(vm: HvVm, allowOnline: boolean): OnlineCheck {
  const unmet: UnmetRequirement[] = [];
  if (!vm.backup.enabled) unmet.push({ requirement: 'guest-agent', reason: 'the Backup (volume shadow copy) integration service is disabled for this VM' });
  else if (!vm.backup.responding) unmet.push({ requirement: 'guest-agent', reason: 'the Backup (volume shadow copy) integration service does not respond (integration services not installed or not running in the guest)' });
  for (const p of vm.backup.guestProblems) unmet.push({ requirement: 'guest-freeze', reason: `the guest cannot take a VSS snapshot: ${p}` });
  if (vm.state !== 'Running') unmet.push({ requirement: 'vm-running', reason: `the VM is ${vm.state.toLowerCase()}, not running` });
  if (vm.cluster && vm.cluster.groupState !== 'Online') unmet.push({ requirement: 'vm-running', reason: `the VM's cluster resource group is ${vm.cluster.groupState} (owner node ${vm.cluster.ownerNode})` });
  for (const d of vm.disks) {
    if (d.format === 'PassThrough') unmet.push({ requirement: 'disks-snapshottable', reason: `${diskKey(d)} is a pass-through physical disk` });
    else if (d.controllerType === 'IDE') unmet.push({ requirement: 'disks-snapshottable', reason: `${diskKey(d)} is on an IDE controller: an online (VSS) backup needs every disk on SCSI (DPM's rule), so this VM is backed up offline` });
  }
  if (!allowOnline) unmet.push({ requirement: 'online-allowed', reason: 'online backup is not allowed for this VM (source option)' });
  return { possible: unmet.length === 0, unmet };
}
