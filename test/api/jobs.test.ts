/** /api/v1/jobs without an engine: the queue, filters, the list cache, cancel, conflicts and coded failures. */
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { startTestAppliance } from './helpers.js';

t.test('jobs: start, fail with a coded reason, list with filters, show, log, cancel', async (t) => {
  const a = await startTestAppliance(t, { limits: { maxConcurrentJobs: 1 } });
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: '/srv/d0' }] })).json() as { id: string };
  const v = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'verify' });
  t.equal(v.statusCode, 202);
  const vj = v.json() as Job;
  t.match(vj, { kind: 'verify', trigger: 'api', attempt: 1 });
  const done = await a.appliance.queue.waitFor(vj.id);
  t.equal(done.state, 'failed');
  t.equal(done.error?.code, 'SV_ERR_APPLIANCE_ENGINE_UNAVAILABLE', 'the failure keeps its catalogued code');
  const list1 = (await a.call('viewer', 'GET', '/api/v1/jobs')).json() as Job[];
  t.equal(list1[0].state, 'failed', 'the list shows the transition at once (cache dropped)');
  t.notOk('log' in list1[0] || 'result' in list1[0], 'lists carry neither logs nor results');
  const shown = (await a.call('viewer', 'GET', `/api/v1/jobs/${vj.id}`)).json() as Job;
  t.equal(shown.error?.code, 'SV_ERR_APPLIANCE_ENGINE_UNAVAILABLE');
  const log = (await a.call('viewer', 'GET', `/api/v1/jobs/${vj.id}/log`)).json() as { lines: { message: string }[] };
  t.match(log.lines.map((l) => l.message), ['queued (api)', 'started (attempt 1)', /^failed: SV_ERR_APPLIANCE_ENGINE_UNAVAILABLE/]);
  const c = await a.call('operator', 'POST', `/api/v1/jobs/${vj.id}/cancel`);
  t.equal(c.statusCode, 409);
  t.equal(c.json().code, 'SV_ERR_JOB_NOT_CANCELLABLE');

  // a queued job can be cancelled; a second job of the same kind for a source is refused while one is pending
  await a.appliance.queue.stop(); // nothing dispatches from here on
  const b1 = (await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id })).json() as Job;
  t.equal(b1.state, 'queued');
  const dup = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().code, 'SV_ERR_JOB_SOURCE_BUSY');
  t.equal((await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'check', sourceId: src.id })).statusCode, 202, 'another kind may queue');
  t.equal((await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'gc' })).statusCode, 202);
  t.equal((await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'gc' })).json().code, 'SV_ERR_JOB_SOURCE_BUSY');
  const cancelled = await a.call('operator', 'POST', `/api/v1/jobs/${b1.id}/cancel`);
  t.equal(cancelled.statusCode, 200);
  t.equal(cancelled.json().state, 'cancelled');

  const q = async (qs: string) => ((await a.call('viewer', 'GET', `/api/v1/jobs${qs}`)).json() as Job[]).map((j) => `${j.kind}:${j.state}`);
  t.same(await q(''), ['gc:queued', 'check:queued', 'backup:cancelled', 'verify:failed'], 'newest first');
  t.same(await q('?state=queued'), ['gc:queued', 'check:queued']);
  t.same(await q('?kind=verify'), ['verify:failed']);
  t.same(await q(`?sourceId=${src.id}`), ['check:queued', 'backup:cancelled']);
  t.same(await q('?limit=1'), ['gc:queued']);
  t.same(await q('?limit=0'), []);
  const status = (await a.call('viewer', 'GET', '/api/v1/status')).json() as { jobs: Record<string, number>; engine: boolean };
  t.same(status.jobs, { queued: 2, running: 0 });
  t.equal(status.engine, false);
  t.equal((await a.call('admin', 'DELETE', `/api/v1/sources/${src.id}`)).json().code, 'SV_ERR_API_CONFLICT', 'a source with pending jobs stays');
  const unknownSource = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: '00000000-0000-0000-0000-00000000abcd' });
  t.equal(unknownSource.statusCode, 404);
});
