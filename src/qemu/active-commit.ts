/**
 * Active commit: merging the active overlay of a chain back into its base node while QEMU (or
 * qemu-storage-daemon) runs. Used by the SMB checkpoint merge (hypervisor/qemu/merge.ts: the overlay is a
 * device's active layer) and by the replica fence (hypervisor/replica/fence.ts: the overlay is the root of the
 * replication export in qsd).
 *
 *   1. `block-commit` of `top` into `base`, job `jobId` with auto-dismiss off, unless a job of that id is
 *      already there (a killed agent started it: it is driven on from its state);
 *   2. `job-complete` once the job is READY: the parents of `top` go back onto `base`;
 *   3. `job-dismiss` once it is CONCLUDED; a job that concluded with an error is the caller's coded failure
 *      (the overlay stays in the chain: nothing is lost).
 * A job that is gone (dismissed by an earlier attempt) ends the wait: the caller checks the graph. Writes made
 * to `top` while the job runs are copied to `base` through `base` itself, so they mark its enabled dirty
 * bitmaps: change tracking on the base node sees every one of them.
 *
 * Contract: safe to call again after a crash at any step; resolves once the job is over (the caller verifies
 * that `top` left the chain); throws `failure(...)` on a failed job or after `timeoutMs`.
 */
import type { SvError } from '../errors/index.js';
import type { QmpClient } from './qmp.js';
import { jobDismiss } from './qmp-commands.js';

export interface ActiveCommit {
  readonly jobId: string;
  /** The active overlay (its node name). */
  readonly top: string;
  /** The node it is merged into. */
  readonly base: string;
  readonly timeoutMs: number;
  /** The caller's coded error for a failed or stuck merge. */
  readonly failure: (message: string, details: Record<string, unknown>) => SvError;
}

interface JobInfo { id: string; status: string; error?: string }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function activeCommit(qmp: QmpClient, c: ActiveCommit): Promise<void> {
  const job = async (): Promise<JobInfo | undefined> => (await qmp.execute<JobInfo[]>('query-jobs')).find((j) => j.id === c.jobId);
  if (!(await job())) await qmp.execute('block-commit', { 'job-id': c.jobId, device: c.top, 'base-node': c.base, 'auto-dismiss': false });
  const end = Date.now() + c.timeoutMs;
  let completed = false;
  for (;;) {
    const j = await job();
    if (!j) return;
    if (j.status === 'ready' && !completed) {
      await qmp.execute('job-complete', { id: c.jobId });
      completed = true;
    } else if (j.status === 'concluded') {
      await jobDismiss(qmp, c.jobId);
      if (j.error) throw c.failure(`merging ${c.top} back into ${c.base} failed: ${j.error}`, { job: c.jobId });
      return;
    }
    if (Date.now() > end) throw c.failure(`merging ${c.top} back into ${c.base} did not finish in ${c.timeoutMs} ms (job ${c.jobId} ${j.status})`, { job: c.jobId, status: j.status });
    await sleep(20);
  }
}
