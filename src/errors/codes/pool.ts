import type { ErrorTable } from '../spec.js';

/** Errors of the worker pool (workers/ and src/pool/). */
export const POOL_ERRORS = {
  SV_ERR_POOL_WORKER_FAILED: { status: 500, summary: 'A worker thread died or threw something that is not a catalogued error.' },
  SV_ERR_POOL_UNKNOWN_TASK: { status: 500, summary: 'A task name was sent to the pool that no worker module exports.' },
  SV_ERR_POOL_CLOSED: { status: 503, summary: 'A task was submitted after the worker pool was shut down.' },
} as const satisfies ErrorTable;
