import t from 'tap';
import { startTestAppliance } from './helpers.js';

t.test('/healthz is public and answers ok', async (t) => {
  const a = await startTestAppliance(t);
  const r = await a.call(null, 'GET', '/healthz');
  t.equal(r.statusCode, 200);
  t.equal(r.json().status, 'ok');
});

t.test('/metrics needs a token and serves the product metrics', async (t) => {
  const a = await startTestAppliance(t);
  const anon = await a.call(null, 'GET', '/metrics');
  t.equal(anon.statusCode, 401);
  t.equal(anon.json().code, 'SV_ERR_API_UNAUTHENTICATED');
  const r = await a.call('viewer', 'GET', '/metrics');
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /text\/plain/);
  for (const name of ['process_cpu_seconds_total', 'shadowvault_jobs', 'shadowvault_job_duration_seconds', 'shadowvault_store_filesystem_free_bytes', 'shadowvault_verify_bad_blocks_total']) {
    t.match(r.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  t.match(r.body, /shadowvault_api_auth_failures_total 1/);
});

t.test('OpenAPI document lists every route with its role and schemas', async (t) => {
  const a = await startTestAppliance(t);
  const r = await a.call(null, 'GET', '/api/v1/openapi.json');
  t.equal(r.statusCode, 200);
  const doc = r.json() as { openapi: string; paths: Record<string, Record<string, { 'x-shadowvault-role': string; requestBody?: unknown; responses: Record<string, unknown> }>> };
  t.equal(doc.openapi, '3.1.0');
  for (const p of ['/api/v1/groups', '/api/v1/groups/{id}', '/api/v1/sources', '/api/v1/sources/{id}', '/api/v1/jobs', '/api/v1/jobs/{id}', '/api/v1/jobs/{id}/cancel', '/api/v1/jobs/{id}/log', '/api/v1/sources/{id}/points', '/api/v1/sources/{id}/points/{pointId}', '/api/v1/sources/{id}/points/{pointId}/restore', '/api/v1/sources/{id}/points/{pointId}/disks/{disk}/image', '/api/v1/tokens', '/api/v1/tokens/{id}', '/api/v1/status', '/healthz', '/metrics']) {
    t.ok(doc.paths[p], p);
  }
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      t.ok(['public', 'viewer', 'operator', 'admin', 'agent'].includes(op['x-shadowvault-role']), `${m} ${path} role`);
      if (m === 'post' || m === 'patch') t.ok(op.requestBody || path.endsWith('/cancel'), `${m} ${path} has a body schema`);
    }
  }
  t.same(JSON.parse(JSON.stringify(doc)), doc, 'document is plain JSON');
  const schemas = (doc as unknown as { components: { schemas: Record<string, unknown> } }).components.schemas;
  const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]);
  t.ok(refs.length > 10, `${refs.length} references`);
  for (const ref of new Set(refs)) {
    const m = /^#\/components\/schemas\/(\w+)$/.exec(ref);
    t.ok(m && schemas[m[1]], `${ref} resolves`);
  }
});

t.test('status', async (t) => {
  const a = await startTestAppliance(t);
  const r = await a.call('viewer', 'GET', '/api/v1/status');
  t.equal(r.statusCode, 200);
  t.equal(r.json().store, a.appliance.config.storeDir);
  t.same(r.json().jobs, { queued: 0, running: 0 });
});
