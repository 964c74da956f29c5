/**
 * Issue 9, D4: a backup blocked in a system call could not be cancelled (POST /jobs/:id/cancel never
 * answered, the job stayed running for good). Real blocking peers (test/helpers/stuck-disk.ts): a source disk
 * on a FUSE mount whose reads hang (10 s each, far past the 3 s stuck limit), and a FIFO as source disk. Cancel must answer, the job must end,
 * and the appliance must go on running other backups (the stuck engine thread was replaced).
 */
import { join } from 'node:path';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { tempDir } from '../helpers/env.js';
import { fifoDisk, hungFuseDisk } from '../helpers/stuck-disk.js';
import { api } from '../api/serve-helper.js';
import { makeRawImage } from '../appliance/images.js';
import { addSource, backup, finished, HANG_MS, start, waitJob, type Appl } from './issue9-d4-helpers.js';

/** Cancel a job; the request must answer (a hang fails here, after HANG_MS). */
async function cancel(s: Appl, id: string): Promise<{ status: number; json: Job }> {
  const r = await fetch(`${s.url}/api/v1/jobs/${id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` }, signal: AbortSignal.timeout(HANG_MS) });
  return { status: r.status, json: (await r.json()) as Job };
}

t.test('a job stuck in a read or an open can be cancelled, and the appliance goes on', async (t) => {
  const dir = tempDir(t, 'sv-d4-cancel-');
  const hung = await hungFuseDisk(t);
  const fifo = fifoDisk(join(dir, 'fifo-disk'));
  const good = join(dir, 'good.img');
  makeRawImage(good, 4, 4, 1);
  const s = await start(join(dir, 'data'));
  t.teardown(() => s.proc.kill('SIGKILL'));
  const hungId = await addSource(s, 'vm-hung', hung);
  const fifoId = await addSource(s, 'vm-fifo', fifo);
  const goodId = await addSource(s, 'vm-good', good);

  // the read from the hung mount blocks whatever the opening code checks
  const j1 = await backup(s, hungId);
  await waitJob(s, j1.id, (j) => j.state === 'running');
  await new Promise((r) => setTimeout(r, 1000)); // let the engine reach the blocking read
  const c1 = await cancel(s, j1.id);
  t.equal(c1.status, 200, 'cancel answers');
  const end1 = await waitJob(s, j1.id, finished);
  t.equal(end1.state, 'cancelled', JSON.stringify(end1.error));
  t.equal(end1.error?.code, 'SV_ERR_JOB_STUCK', 'the job says it was stuck');

  // a FIFO: stuck in open() on the old opening code, refused at once when formats checks the file type
  const j2 = await backup(s, fifoId);
  const run2 = await waitJob(s, j2.id, (j) => j.state === 'running' || finished(j));
  if (run2.state === 'running') {
    const c2 = await cancel(s, j2.id);
    t.equal(c2.status === 200 || c2.status === 409, true, `cancel answers (${c2.status})`);
  }
  const end2 = await waitJob(s, j2.id, finished);
  t.ok(end2.state === 'cancelled' || end2.state === 'failed', `the FIFO backup ended: ${end2.state} ${end2.error?.code}`);

  // the engine thread was replaced: another source's backup works
  const j3 = await backup(s, goodId);
  const end3 = await waitJob(s, j3.id, finished);
  t.equal(end3.state, 'succeeded', JSON.stringify(end3.error));
  const pts = await api<unknown[]>(s, s.token, 'GET', `/api/v1/sources/${goodId}/points`);
  t.equal(pts.json.length, 1);
});
