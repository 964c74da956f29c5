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
} as const satisfies ErrorTable;
