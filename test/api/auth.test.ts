import t from 'tap';
import type { Role } from '../../src/appliance/model.js';
import { startTestAppliance } from './helpers.js';

const RANK: Record<string, number> = { public: 0, viewer: 1, operator: 2, admin: 3 };
/** `agent` is outside the rank: agent routes take agent credentials only, agent credentials nothing else. */
const allowed = (role: Role, need: string): boolean => (role === 'agent' || need === 'agent' ? role === need : RANK[role] >= RANK[need]);

function concrete(path: string): string {
  return path.replace(/\{[A-Za-z]+\}/g, (m) => (m === '{disk}' ? 'disk0' : '00000000-0000-0000-0000-000000000000'));
}

t.test('every route checks the role it declares, for every role, and refuses a missing or wrong token', async (t) => {
  const a = await startTestAppliance(t, { limits: { authFailures: 10_000 } });
  const doc = (await a.call(null, 'GET', '/api/v1/openapi.json')).json() as { paths: Record<string, Record<string, { 'x-shadowvault-role': string }>> };
  let routes = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      const method = m.toUpperCase() as 'GET' | 'POST' | 'PATCH' | 'DELETE';
      const need = op['x-shadowvault-role'];
      const url = concrete(path);
      // an empty-but-valid-JSON body: roles are checked before the body is validated
      const body = method === 'POST' || method === 'PATCH' ? {} : undefined;
      routes++;
      if (need === 'public') {
        const r = await a.call(null, method, url, body);
        // a public POST answers an empty body with 400 (validation), never 401/403
        t.equal(r.statusCode, method === 'GET' ? 200 : 400, `${m} ${path} public`);
        continue;
      }
      const none = await a.call(null, method, url, body);
      t.equal(none.statusCode, 401, `${m} ${path} without token`);
      t.equal(none.json().code, 'SV_ERR_API_UNAUTHENTICATED');
      const wrong = await a.call({ token: 'svt_not-a-real-token' }, method, url, body);
      t.equal(wrong.statusCode, 401, `${m} ${path} wrong token`);
      const garbage = await a.call(null, method, url, body, { authorization: 'Basic Zm9vOmJhcg==' });
      t.equal(garbage.statusCode, 401, `${m} ${path} basic auth`);
      for (const role of ['viewer', 'operator', 'admin', 'agent'] as Role[]) {
        const r = await a.call(role, method, url, body);
        if (!allowed(role, need)) {
          t.equal(r.statusCode, 403, `${m} ${path} as ${role}`);
          t.equal(r.json().code, 'SV_ERR_API_FORBIDDEN');
        } else {
          t.not(r.statusCode, 403, `${m} ${path} as ${role} allowed`);
          t.not(r.statusCode, 401, `${m} ${path} as ${role} authenticated`);
        }
      }
    }
  }
  t.ok(routes >= 20, `${routes} routes checked`);
});

t.test('failed authentications are rate-limited per address', async (t) => {
  const a = await startTestAppliance(t, { limits: { authFailures: 5, authWindowMs: 60_000 } });
  for (let i = 0; i < 5; i++) t.equal((await a.call({ token: 'svt_bad' }, 'GET', '/api/v1/jobs')).statusCode, 401);
  const limited = await a.call({ token: 'svt_bad' }, 'GET', '/api/v1/jobs');
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().code, 'SV_ERR_API_RATE_LIMITED');
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After set');
  t.equal((await a.call(null, 'GET', '/api/v1/jobs')).statusCode, 429, 'no token at all counts as a failure too');
  t.equal((await a.call('admin', 'GET', '/api/v1/jobs')).statusCode, 200, 'a valid token still passes (issue9-valid-token-not-locked-out)');
  t.equal((await a.call(null, 'GET', '/healthz')).statusCode, 200, 'public routes stay open');
});

t.test('tokens: create, use, list without secrets, revoke', async (t) => {
  const a = await startTestAppliance(t);
  const created = await a.call('admin', 'POST', '/api/v1/tokens', { name: 'grafana', role: 'viewer' });
  t.equal(created.statusCode, 201);
  const { id, token } = created.json() as { id: string; token: string };
  t.match(token, /^svt_/);
  t.equal((await a.call({ token }, 'GET', '/api/v1/jobs')).statusCode, 200);
  t.equal((await a.call({ token }, 'POST', '/api/v1/jobs', { kind: 'gc' })).statusCode, 403);
  const list = await a.call('admin', 'GET', '/api/v1/tokens');
  t.notMatch(list.body, token);
  t.notMatch(list.body, /sha256/);
  const stored = a.appliance.db.tokens.value.find((x) => x.id === id);
  t.ok(stored && stored.sha256.length === 64 && !JSON.stringify(stored).includes(token), 'stored hashed');
  t.equal((await a.call('admin', 'DELETE', `/api/v1/tokens/${id}`)).statusCode, 204);
  t.equal((await a.call({ token }, 'GET', '/api/v1/jobs')).statusCode, 401);
  t.equal((await a.call('admin', 'DELETE', `/api/v1/tokens/${id}`)).statusCode, 404);
  const self = a.appliance.tokens.list().find((x) => x.name === 't-admin');
  t.equal((await a.call('admin', 'DELETE', `/api/v1/tokens/${self?.id}`)).json().code, 'SV_ERR_API_CONFLICT');
});
