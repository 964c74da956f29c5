/**
 * The job queue's dispatch rules, with an executor whose jobs finish when the test says so (the queue is
 * what is tested here; real engine jobs run in test/appliance/engine-jobs.test.ts).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { ManualClock } from '../../src/appliance/clock.js';
import { DEFAULT_LIMITS, type Limits } from '../../src/appliance/config.js';
import type { Job } from '../../src/appliance/model.js';
import { JobQueue, type JobControl } from '../../src/appliance/queue.js';
import { StateDb } from '../../src/appliance/state.js';
import { SvError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/env.js';

interface Gate {
  job: Job;
  ctl: JobControl;
  finish(): void;
  fail(err: unknown): void;
}

function harness(t: Test, limits: Partial<Limits> = {}, dir = tempDir(t)) {
  const db = StateDb.open(dir);
  const gates = new Map<string, Gate>();
  const log: string[] = [];
  const hosts: Record<string, string> = { a1: 'hostA', a2: 'hostA', b1: 'hostB' };
  let concurrent = 0;
  let maxConcurrent = 0;
  const q = new JobQueue({
    db,
    clock: new ManualClock('2026-01-01T00:00:00Z'),
    limits: { ...DEFAULT_LIMITS, ...limits },
    log: pino({ level: 'silent' }),
    hostOf: (id) => hosts[id] ?? 'local',
    exec: (job, ctl) =>
      new Promise((resolve, reject) => {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        log.push(`start ${job.kind}:${job.sourceId ?? '-'}`);
        const done = (): void => {
          concurrent--;
        };
        ctl.signal.addEventListener('abort', () => {
          done();
          reject(ctl.signal.reason);
        });
        gates.set(job.id, {
          job,
          ctl,
          finish: () => {
            done();
            resolve({ ok: true });
          },
          fail: (err) => {
            done();
            reject(err);
          },
        });
      }),
  });
  t.teardown(async () => {
    await q.stop();
    await db.close();
  });
  /** Wait until the queue has settled after a change (saves and dispatch are asynchronous). */
  const tickle = async (): Promise<void> => {
    await db.flush();
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      await db.flush();
    }
  };
  return { db, q, gates, log, tickle, stats: () => ({ maxConcurrent }) };
}

t.test('one job per source, per-host and appliance limits, creation order', async (t) => {
  const h = harness(t, { maxConcurrentJobs: 2, maxJobsPerHost: 1 });
  h.q.start();
  const j1 = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'a1' });
  const j2 = await h.q.enqueue({ kind: 'check', trigger: 'api', sourceId: 'a1' });
  const j3 = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'a2' });
  const j4 = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'b1' });
  await h.tickle();
  t.same(h.q.counts(), { queued: 2, running: 2 });
  t.equal(j1.state, 'running');
  t.equal(j2.state, 'queued', 'same source waits');
  t.equal(j3.state, 'queued', 'same host waits');
  t.equal(j4.state, 'running', 'other host runs');
  h.gates.get(j1.id)?.finish();
  await h.q.waitFor(j1.id);
  await h.tickle();
  t.equal(j2.state, 'running', 'next job of the freed source/host in creation order');
  t.equal(j3.state, 'queued');
  h.gates.get(j2.id)?.finish();
  h.gates.get(j4.id)?.finish();
  await h.q.waitFor(j2.id);
  await h.tickle();
  t.equal(j3.state, 'running');
  h.gates.get(j3.id)?.finish();
  await h.q.idle();
  t.ok(h.stats().maxConcurrent <= 2);
  t.ok([j1, j2, j3, j4].every((j) => j.state === 'succeeded'));
});

t.test('gc runs alone and holds back what was queued after it', async (t) => {
  const h = harness(t, { maxConcurrentJobs: 4, maxJobsPerHost: 4 });
  h.q.start();
  const b = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'a1' });
  const gc = await h.q.enqueue({ kind: 'gc', trigger: 'api' });
  const later = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'b1' });
  await h.tickle();
  t.equal(gc.state, 'queued', 'gc waits for the running backup');
  t.equal(later.state, 'queued', 'a job queued after gc waits for gc');
  h.gates.get(b.id)?.finish();
  await h.q.waitFor(b.id);
  await h.tickle();
  t.equal(gc.state, 'running');
  t.equal(later.state, 'queued');
  h.gates.get(gc.id)?.finish();
  await h.q.waitFor(gc.id);
  await h.tickle();
  t.equal(later.state, 'running');
  h.gates.get(later.id)?.finish();
  await h.q.idle();
});

t.test('cancel queued, cancel running, cancel finished is refused; failures keep their code', async (t) => {
  const h = harness(t, { maxConcurrentJobs: 1 });
  h.q.start();
  const run = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'a1' });
  const wait = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'b1' });
  await h.tickle();
  t.equal((await h.q.cancel(wait.id)).state, 'cancelled');
  const cancelled = await h.q.cancel(run.id);
  t.equal(cancelled.state, 'cancelled');
  t.equal(cancelled.error?.code, 'SV_ERR_CORE_CANCELLED');
  await t.rejects(h.q.cancel(run.id), { code: 'SV_ERR_JOB_NOT_CANCELLABLE' });
  const bad = await h.q.enqueue({ kind: 'verify', trigger: 'api' });
  await h.tickle();
  h.gates.get(bad.id)?.fail(new SvError('SV_ERR_CORE_NO_SPACE', 'disk full', {}));
  const done = await h.q.waitFor(bad.id);
  t.equal(done.state, 'failed');
  t.equal(done.error?.code, 'SV_ERR_CORE_NO_SPACE');
  t.match(done.log.map((l) => l.message).join('\n'), /failed: SV_ERR_CORE_NO_SPACE/);
});

t.test('progress gives bytes, rate and ETA', async (t) => {
  const h = harness(t);
  h.q.start();
  const j = await h.q.enqueue({ kind: 'backup', trigger: 'api', sourceId: 'a1' });
  await h.tickle();
  await new Promise((r) => setTimeout(r, 20));
  h.gates.get(j.id)?.ctl.progress(1000, 4000);
  t.equal(j.progress.bytesDone, 1000);
  t.equal(j.progress.bytesTotal, 4000);
  t.ok(j.progress.rate > 0);
  t.ok(j.progress.etaSeconds !== null && j.progress.etaSeconds >= 0);
  h.gates.get(j.id)?.finish();
  await h.q.waitFor(j.id);
  t.equal(j.progress.bytesDone, 4000);
});

t.test('after a crash, running jobs are marked interrupted and retried by policy', async (t) => {
  const dir = tempDir(t);
  mkdirSync(dir, { recursive: true });
  const base = { trigger: 'sync', params: { tag: 'sync' }, createdAt: '2026-01-01T00:00:00.000Z', progress: { bytesDone: 5, bytesTotal: 10, rate: 1, etaSeconds: 5 }, log: [] };
  writeFileSync(join(dir, 'jobs.json'), JSON.stringify([
    { ...base, id: 'j-running', kind: 'backup', state: 'running', sourceId: 'a1', attempt: 1 },
    { ...base, id: 'j-last', kind: 'backup', state: 'running', sourceId: 'b1', attempt: 3 },
    { ...base, id: 'j-queued', kind: 'check', state: 'queued', sourceId: 'a2', attempt: 1 },
    { ...base, id: 'j-done', kind: 'gc', state: 'succeeded', attempt: 1 },
  ]));
  writeFileSync(join(dir, 'appliance.lock'), '999999999\n');
  const h = harness(t, { maxAttempts: 3 }, dir);
  const interrupted = await h.q.recover();
  t.same(interrupted.map((j) => j.id).sort(), ['j-last', 'j-running']);
  t.equal(h.q.get('j-running')?.state, 'interrupted');
  t.equal(h.q.get('j-running')?.error?.code, 'SV_ERR_JOB_INTERRUPTED');
  const retries = h.q.list().filter((j) => j.retryOf);
  t.equal(retries.length, 1, 'only the job with attempts left is retried');
  t.match(retries[0], { retryOf: 'j-running', attempt: 2, state: 'queued', kind: 'backup', sourceId: 'a1', trigger: 'retry', params: { tag: 'sync' } });
  t.equal(h.q.get('j-queued')?.state, 'queued', 'queued jobs stay queued');
  await h.db.flush();
  const again = StateDb.open(join(dir, 'reopen-check'));
  await again.close();
});

t.test('a second appliance on the same state folder is refused', async (t) => {
  const dir = tempDir(t);
  const db = StateDb.open(dir);
  t.throws(() => StateDb.open(dir), { code: 'SV_ERR_APPLIANCE_LOCKED' });
  await db.close();
  const again = StateDb.open(dir);
  await again.close();
});
