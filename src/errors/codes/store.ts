import type { ErrorTable } from '../spec.js';

/** Errors of the volume store (storage/). */
export const STORE_ERRORS = {
  SV_ERR_STORE_NOT_FOUND: { status: 404, summary: 'No volume store exists at the given path.' },
  SV_ERR_STORE_LOCKED: { status: 409, summary: 'Another job holds the lock this operation needs (same data source, or gc).' },
} as const satisfies ErrorTable;
