import type { ErrorTable } from '../spec.js';

/** Errors of the sync engine (src/sync/): backup, consistency check, restore. */
export const SYNC_ERRORS = {
  SV_ERR_SYNC_SOURCE_CHANGED_SIZE: { status: 409, summary: 'A protected disk\'s virtual size differs from the replica\'s; a new initial copy is needed.' },
  SV_ERR_SYNC_BAD_CHANGE_LIST: { status: 400, summary: 'A change list is not a JSON array of [offset, length] pairs of non-negative integers inside the disk.' },
  SV_ERR_SYNC_BAD_OPTIONS: { status: 400, summary: 'Backup/restore options are inconsistent (no disks, block size not a power of two, change lists not matching disks).' },
  SV_ERR_SYNC_DISK_NOT_FOUND: { status: 404, summary: 'The recovery point has no disk with that index or name (the message and details list the disks it has).' },
  SV_ERR_SYNC_NO_CONFIGURATION: { status: 404, summary: 'The recovery point has no VM configuration (not a VM source, a view that gave none such as a stopped QEMU VM, or a point taken before configurations were kept): a whole-VM restore needs one.' },
  SV_ERR_SYNC_NO_REPLICA: { status: 409, summary: 'A consistency check needs an earlier recovery point (the replica) to compare with.' },
  SV_ERR_SYNC_BAD_BLOCKS: { status: 500, summary: 'verify found bad or missing blocks; details list them and the points they affect.' },
} as const satisfies ErrorTable;
