/**
 * kill -9 the appliance in the middle of a backup job, start it again: the job is reported interrupted and
 * re-run (a retry job), and the earlier recovery point is intact (downloaded and compared byte for byte).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { tempDir } from '../helpers/env.js';
import { api, serve } from '../api/serve-helper.js';
import { makeRawImage, sha256 } from './images.js';

t.test('kill -9 during a backup: interrupted, retried, earlier point intact', async (t) => {
  const dir = tempDir(t, 'sv-crash-');
  const data = join(dir, 'data');
  const disk = join(dir, 'vm-crash-disk0.img');
  const env = { SHADOWVAULT_WORKERS: '1' };
  const first = makeRawImage(disk, 128, 1, 7);

  const s1 = await serve(['--data-dir', data, '--source-root', dir], env);
  t.teardown(() => s1.proc.kill('SIGKILL'));
  const token = readFileSync(join(data, 'admin-token'), 'utf8').trim();
  const src = (await api<{ id: string }>(s1, token, 'POST', '/api/v1/sources', { name: 'vm-crash', disks: [{ name: 'disk0', path: disk }] })).json;
  const waitJob = async (s: { url: string }, id: string, until: (j: Job) => boolean): Promise<Job> => {
    for (;;) {
      const j = (await api<Job>(s, token, 'GET', `/api/v1/jobs/${id}`)).json;
      if (until(j)) return j;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const j1 = (await api<Job>(s1, token, 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id })).json;
  const done1 = await waitJob(s1, j1.id, (j) => !['queued', 'running'].includes(j.state));
  t.equal(done1.state, 'succeeded', JSON.stringify(done1.error));
  const pointA = (done1.result as { pointId: string }).pointId;

  makeRawImage(disk, 128, 128, 8); // every block changes: a long backup
  const j2 = (await api<Job>(s1, token, 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id })).json;
  const mid = await waitJob(s1, j2.id, (j) => (j.state === 'running' && j.progress.bytesDone > 0) || !['queued', 'running'].includes(j.state));
  t.equal(mid.state, 'running', 'caught the backup while it ran');
  t.ok(mid.progress.bytesDone < mid.progress.bytesTotal, `in the middle: ${mid.progress.bytesDone} of ${mid.progress.bytesTotal}`);
  s1.proc.kill('SIGKILL');
  await s1.exited;

  const s2 = await serve(['--data-dir', data, '--source-root', dir], env);
  t.teardown(() => s2.proc.kill('SIGKILL'));
  t.ok(s2.lines.some((l) => l.jobId === j2.id && l.to === 'interrupted'), 'a log line for the interrupted job');
  const old = (await api<Job>(s2, token, 'GET', `/api/v1/jobs/${j2.id}`)).json;
  t.equal(old.state, 'interrupted');
  t.equal(old.error?.code, 'SV_ERR_JOB_INTERRUPTED');
  const jobs = (await api<Job[]>(s2, token, 'GET', '/api/v1/jobs?kind=backup')).json;
  const retry = jobs.find((j) => j.retryOf === j2.id);
  t.ok(retry, 'a retry job was queued');
  t.equal(retry?.attempt, 2);
  const done = await waitJob(s2, retry!.id, (j) => !['queued', 'running'].includes(j.state));
  t.equal(done.state, 'succeeded', JSON.stringify(done.error));

  const points = (await api<{ id: string }[]>(s2, token, 'GET', `/api/v1/sources/${src.id}/points`)).json;
  t.same(points.map((p) => p.id), [pointA, (done.result as { pointId: string }).pointId], 'the earlier point and the re-run one, nothing else');
  const img = await fetch(`${s2.url}/api/v1/sources/${src.id}/points/${pointA}/disks/disk0/image`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(img.status, 200);
  t.equal(sha256(Buffer.from(await img.arrayBuffer())), sha256(first), 'the earlier point is intact');

  // graceful stop in the middle of a backup: exit 0, the job is interrupted and re-run at the next start
  makeRawImage(disk, 128, 128, 9);
  const j3 = (await api<Job>(s2, token, 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id })).json;
  await waitJob(s2, j3.id, (j) => (j.state === 'running' && j.progress.bytesDone > 0) || !['queued', 'running'].includes(j.state));
  s2.proc.kill('SIGTERM');
  t.equal(await s2.exited, 0, 'SIGTERM during a backup exits cleanly');
  const s3 = await serve(['--data-dir', data, '--source-root', dir], env);
  t.teardown(() => s3.proc.kill('SIGKILL'));
  const stopped = (await api<Job>(s3, token, 'GET', `/api/v1/jobs/${j3.id}`)).json;
  t.equal(stopped.state, 'interrupted');
  const retry3 = (await api<Job[]>(s3, token, 'GET', '/api/v1/jobs?kind=backup')).json.find((j) => j.retryOf === j3.id);
  t.ok(retry3, 'retry queued by the graceful stop');
  t.equal((await waitJob(s3, retry3!.id, (j) => !['queued', 'running'].includes(j.state))).state, 'succeeded');
  const after = (await api<{ id: string }[]>(s3, token, 'GET', `/api/v1/sources/${src.id}/points`)).json;
  t.equal(after.length, 3, 'three points: no half point from either stop');

  // cancel through the API in the middle of a backup (the engine thread stops, nothing is committed)
  makeRawImage(disk, 128, 128, 10);
  const j4 = (await api<Job>(s3, token, 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id })).json;
  await waitJob(s3, j4.id, (j) => (j.state === 'running' && j.progress.bytesDone > 0) || !['queued', 'running'].includes(j.state));
  const cancelled = await api<Job>(s3, token, 'POST', `/api/v1/jobs/${j4.id}/cancel`);
  t.equal(cancelled.status, 200);
  t.equal(cancelled.json.state, 'cancelled');
  t.equal(cancelled.json.error?.code, 'SV_ERR_CORE_CANCELLED');
  t.equal((await api<unknown[]>(s3, token, 'GET', `/api/v1/sources/${src.id}/points`)).json.length, 3, 'no point from the cancelled backup');
  s3.proc.kill('SIGTERM');
  t.equal(await s3.exited, 0);
});
