/**
 * Issue 9, D4: a job that hangs the appliance was retried at every start (up to maxAttempts), hanging it
 * again each time. Now a retry that ends with the same error code as the attempt it retried is not retried
 * again: it fails with SV_ERR_JOB_RETRY_LIMIT naming the code. The hang is real: a source disk on a FUSE
 * mount whose reads hang; the appliance is killed (-9) twice while the backup is stuck.
 */
import { join } from 'node:path';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { tempDir } from '../helpers/env.js';
import { hungFuseDisk } from '../helpers/stuck-disk.js';
import { api } from '../api/serve-helper.js';
import { makeRawImage } from '../appliance/images.js';
import { addSource, backup, ended, finished, start, waitJob, type Appl } from './issue9-d4-helpers.js';

async function jobsOf(s: Appl): Promise<Job[]> {
  return (await api<Job[]>(s, s.token, 'GET', '/api/v1/jobs?kind=backup')).json;
}

t.test('a job interrupted twice the same way is not retried a third time', async (t) => {
  const dir = tempDir(t, 'sv-d4-retry-');
  const data = join(dir, 'data');
  const hung = await hungFuseDisk(t);
  const good = join(dir, 'good.img');
  makeRawImage(good, 4, 4, 2);

  const s1 = await start(data);
  t.teardown(() => s1.proc.kill('SIGKILL'));
  const src = await addSource(s1, 'vm-hung', hung);
  const goodId = await addSource(s1, 'vm-good', good);
  const j1 = await backup(s1, src);
  await waitJob(s1, j1.id, (j) => j.state === 'running');
  await new Promise((r) => setTimeout(r, 1000)); // the running state is saved, the engine blocks in its read
  s1.proc.kill('SIGKILL');
  t.not(await ended(s1), 'hung', 'kill -9 ends the appliance');

  const s2 = await start(data);
  t.teardown(() => s2.proc.kill('SIGKILL'));
  const retry = (await jobsOf(s2)).find((j) => j.retryOf === j1.id);
  t.equal(retry?.attempt, 2, 'the first interruption is retried');
  await waitJob(s2, retry!.id, (j) => j.state === 'running');
  await new Promise((r) => setTimeout(r, 1000));
  s2.proc.kill('SIGKILL');
  t.not(await ended(s2), 'hung', 'kill -9 ends the appliance');

  const s3 = await start(data);
  t.teardown(() => s3.proc.kill('SIGKILL'));
  const jobs = await jobsOf(s3);
  const second = jobs.find((j) => j.id === retry!.id);
  t.equal(second?.state, 'failed', 'the second interruption ends the job');
  t.equal(second?.error?.code, 'SV_ERR_JOB_RETRY_LIMIT');
  t.equal(second?.error?.details?.repeated, 'SV_ERR_JOB_INTERRUPTED', 'it names the repeated code');
  t.notOk(jobs.some((j) => j.retryOf === retry!.id), 'no third attempt');
  t.equal(jobs.filter((j) => !finished(j)).length, 0, 'nothing left queued or running');

  // the appliance is not hung: another backup runs
  const ok = await waitJob(s3, (await backup(s3, goodId)).id, finished);
  t.equal(ok.state, 'succeeded', JSON.stringify(ok.error));
});
