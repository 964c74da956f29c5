import type { ErrorTable } from '../spec.js';

/** Errors of the sync engine (src/sync/): backup, consistency check, restore. */
export const SYNC_ERRORS = {
  SV_ERR_SYNC_SOURCE_CHANGED_SIZE: { status: 409, summary: 'A protected disk\'s virtual size differs from the replica\'s; a new initial copy is needed.' },
} as const satisfies ErrorTable;
