import type { ErrorTable } from '../spec.js';

/** Errors of jobs (src/appliance/jobs*.ts): the durable queue, cancel, retries. */
export const JOB_ERRORS = {
  SV_ERR_JOB_INTERRUPTED: { status: 500, summary: 'The appliance stopped (crash, kill, restart) while the job ran; it is retried by policy.' },
  SV_ERR_JOB_NOT_CANCELLABLE: { status: 409, summary: 'The job has already finished; only queued or running jobs can be cancelled.' },
  SV_ERR_JOB_SOURCE_BUSY: { status: 409, summary: 'A job of the same kind is already queued or running for this data source.' },
  SV_ERR_JOB_TIMED_OUT: { status: 504, summary: 'Waiting for a job to finish took longer than the caller allowed.' },
} as const satisfies ErrorTable;
