import type { ErrorTable } from '../spec.js';

/** Errors of the hypervisor drivers (src/hypervisor/): listing VMs, point-in-time views, change tracking. */
export const HYPERVISOR_ERRORS = {
  SV_ERR_HYPERVISOR_VM_NOT_FOUND: { status: 404, summary: 'No VM with that id is managed by this driver (not behind any configured QMP socket, and not known from an earlier run).' },
  SV_ERR_HYPERVISOR_VM_GONE: { status: 503, summary: 'The VM\'s hypervisor process went away (QEMU crashed or quit) while the driver was working on it; the VM is reported stopped or crashed afterwards.' },
  SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE: { status: 409, summary: 'An online (application-consistent) view was required but a requirement is unmet; details list every unmet requirement.' },
  SV_ERR_HYPERVISOR_FREEZE_FAILED: { status: 502, summary: 'The guest agent could not freeze the guest\'s file systems, or the freeze outlasted its bound and was thawed before the point in time was taken.' },
  SV_ERR_HYPERVISOR_THAW_FAILED: { status: 502, summary: 'The guest agent did not confirm the thaw (guest-fsfreeze-status is not "thawed" after the thaw); the guest may still be frozen.' },
  SV_ERR_HYPERVISOR_VIEW_FAILED: { status: 502, summary: 'Taking the point-in-time view failed; everything the driver had created for it was removed and the VM resumed.' },
  SV_ERR_HYPERVISOR_RESUME_FAILED: { status: 502, summary: 'The VM the driver paused for the point in time did not resume (`cont` failed three times, or query-status still said paused); the state file keeps the mark, so the next cleanup resumes it.' },
  SV_ERR_HYPERVISOR_VIEW_RELEASED: { status: 409, summary: 'The view was used after release(), or a disk index outside the view was given.' },
  SV_ERR_HYPERVISOR_STATE: { status: 500, summary: 'The driver\'s state file in its state directory could not be read or written.' },
  SV_ERR_HYPERVISOR_DISK_SERVER: { status: 502, summary: 'qemu-nbd, serving a stopped VM\'s disk file read-only, failed to start or exited.' },
  SV_ERR_HYPERVISOR_REPLICA_CONFIG: { status: 400, summary: 'A `--replica` declaration is malformed: a missing or unknown key, a relative socket path, a node or job name QEMU would refuse, or a name given twice.' },
  SV_ERR_HYPERVISOR_REPLICA_RESYNCING: { status: 409, summary: 'A backup of a replica VM was refused because its replication is resynchronising (the primary\'s mirror job is copying the disk and is not ready): the replica\'s disk is a mix of old and new blocks, consistent with no point in time. Back it up once the replication state is "replicating" again.' },
  SV_ERR_HYPERVISOR_REPLICA_STATE_UNKNOWN: { status: 503, summary: 'A backup of a replica VM was refused because its replication state cannot be established (the primary\'s QMP socket does not answer, or its mirror job is not there): without it, the replica\'s disk cannot be known to be consistent.' },
  SV_ERR_HYPERVISOR_REPLICA_FENCE: { status: 502, summary: 'The replica\'s qemu-storage-daemon could not fence the replication (overlay on the replica node, read-only export of the frozen state) or merge it back afterwards; the next cleanup merges what is left.' },
  SV_ERR_HYPERVISOR_NO_CONFIGURATION: { status: 409, summary: 'The view cannot give the VM\'s configuration (a QEMU VM that is not running has no QMP to describe it); the point is kept with its disks only.' },
  SV_ERR_HYPERVISOR_BAD_CONFIGURATION: { status: 400, summary: 'VM configuration files refused: a name that is not one plain path component (path traversal, separators, drive letters), too many files, too many bytes, sizes or digests that do not match, or a description that is not the documented shape.' },
  SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED: { status: 501, summary: 'This driver cannot import a VM (QEMU: a VM is a process started from a command line); restore the configuration and disks as files instead (`restore --config-to DIR`).' },
} as const satisfies ErrorTable;
