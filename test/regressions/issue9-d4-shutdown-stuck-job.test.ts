/**
 * Issue 9, D4: SIGTERM left `serve` alive while a job was blocked in a system call (a libuv thread blocked in
 * a read keeps a normal exit waiting for ever). Now the shutdown is bounded: the stuck job is recorded
 * (interrupted, SV_ERR_JOB_STUCK, a retry queued) and the process ends by its signal. The blocking peer is a
 * source disk on a FUSE mount whose reads hang (test/helpers/stuck-disk.ts).
 */
import { join } from 'node:path';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { tempDir } from '../helpers/env.js';
import { hungFuseDisk } from '../helpers/stuck-disk.js';
import { api } from '../api/serve-helper.js';
import { addSource, backup, ended, start, waitJob } from './issue9-d4-helpers.js';

t.test('SIGTERM stops serve while a backup is stuck in a read', async (t) => {
  const dir = tempDir(t, 'sv-d4-stop-');
  const data = join(dir, 'data');
  const hung = await hungFuseDisk(t);
  const s1 = await start(data);
  t.teardown(() => s1.proc.kill('SIGKILL'));
  const src = await addSource(s1, 'vm-hung', hung);
  const j1 = await backup(s1, src);
  await waitJob(s1, j1.id, (j) => j.state === 'running');
  await new Promise((r) => setTimeout(r, 1000)); // let the engine reach the blocking read
  s1.proc.kill('SIGTERM');
  const how = await ended(s1);
  t.not(how, 'hung', 'the process ended');
  if (how !== 'hung') t.ok(how.code === 0 || how.signal === 'SIGTERM', `ended cleanly or by SIGTERM: ${JSON.stringify(how)}`);
  t.ok(s1.lines.some((l) => String(l.msg).includes('blocked in a system call')), 'the log says why it ended by its signal');

  const s2 = await start(data);
  t.teardown(() => s2.proc.kill('SIGKILL'));
  const old = (await api<Job>(s2, s2.token, 'GET', `/api/v1/jobs/${j1.id}`)).json;
  t.equal(old.state, 'interrupted');
  t.equal(old.error?.code, 'SV_ERR_JOB_STUCK');
  const retry = (await api<Job[]>(s2, s2.token, 'GET', '/api/v1/jobs?kind=backup')).json.find((j) => j.retryOf === j1.id);
  t.ok(retry, 'a retry was queued');
  t.equal(retry?.retryCode, 'SV_ERR_JOB_STUCK');
});
