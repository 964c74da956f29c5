/**
 * A replica's replication state, read from the primary's QEMU: the `blockdev-mirror` job the administrator
 * named (query-block-jobs on the primary's QMP socket).
 *
 *   job ready (status 'ready')              'replicating': every write reaches the replica (with copy-mode
 *                                           write-blocking, before the guest's write completes), so the
 *                                           replica's disk is crash-consistent at any instant it is fenced
 *   job present, not ready                  'resynchronising': the mirror copies the disk (first sync, or
 *                                           again after an error); the replica is consistent with no point
 *                                           in time
 *   job absent, QMP not answering           'unknown'
 */
import type { QmpClient } from '../../qemu/qmp.js';
import { queryBlockJobs, type BlockJobInfo } from '../../qemu/qmp-commands.js';
import type { ReplicaInfo } from '../driver.js';
import type { ReplicaConfig } from './config.js';

const MiB = 1024 * 1024;

/** The state, from the primary's QMP client (or why there is none). */
export async function replicationState(c: ReplicaConfig, primary: QmpClient | Error): Promise<ReplicaInfo> {
  const base = { primary: { qmp: c.primary, job: c.job } };
  if (primary instanceof Error) return { ...base, state: 'unknown', reason: `the primary's QMP socket ${c.primary} does not answer: ${primary.message}` };
  let jobs: BlockJobInfo[];
  try {
    jobs = await queryBlockJobs(primary);
  } catch (err) {
    return { ...base, state: 'unknown', reason: `query-block-jobs on the primary failed: ${(err as Error).message}` };
  }
  const job = jobs.find((j) => j.device === c.job);
  if (!job) return { ...base, state: 'unknown', reason: `the primary has no block job ${c.job} (replication not running)` };
  if (job.ready === true && job.status === 'ready') return { ...base, state: 'replicating', reason: `mirror job ${c.job} is ready` };
  return {
    ...base, state: 'resynchronising',
    reason: `mirror job ${c.job} is ${job.status}, not ready: ${Math.floor(job.offset / MiB)} of ${Math.ceil(job.len / MiB)} MiB copied${job['io-status'] && job['io-status'] !== 'ok' ? ` (io-status ${job['io-status']})` : ''}`,
  };
}
