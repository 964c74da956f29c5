import type { ErrorTable } from '../spec.js';

/** Errors of jobs (src/appliance/jobs*.ts): the durable queue, cancel, retries. */
export const JOB_ERRORS = {
  SV_ERR_JOB_INTERRUPTED: { status: 500, summary: 'The appliance stopped (crash, kill, restart) while the job ran; it is retried by policy.' },
  SV_ERR_JOB_NOT_CANCELLABLE: { status: 409, summary: 'The job has already finished; only queued or running jobs can be cancelled.' },
  SV_ERR_JOB_SOURCE_BUSY: { status: 409, summary: 'A job of the same kind is already queued or running for this data source.' },
  SV_ERR_JOB_STUCK: { status: 500, summary: 'The job did not stop within seconds after it was cancelled or interrupted: an operation is blocked in the system (a FIFO, a hung device or network file system). Its engine thread was abandoned and a new one serves the next jobs.' },
  SV_ERR_JOB_ENGINE_RESTARTED: { status: 500, summary: 'The engine thread was replaced because another job was stuck in it; this job, running in the same thread, was stopped.' },
  SV_ERR_JOB_RETRY_LIMIT: { status: 500, summary: 'The job was interrupted twice in a row with the same error (details.repeated names it); it is not retried again. Fix the cause (see the error of the previous attempt) and start it anew.' },
  SV_ERR_JOB_TIMED_OUT: { status: 504, summary: 'Waiting for a job to finish took longer than the caller allowed.' },
} as const satisfies ErrorTable;
