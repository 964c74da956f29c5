/** Hostile input: every bad request gets its status and a catalogued code, and nothing is written. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import tap, { type Test } from 'tap';
const t = tap;
import { CATALOGUE } from '../../src/errors/catalogue.js';
import { GROUP, startTestAppliance, type TestAppliance } from './helpers.js';

function stateHash(a: TestAppliance): string {
  const h = createHash('sha256');
  const dir = a.appliance.config.stateDir;
  for (const f of readdirSync(dir).sort()) if (f !== 'appliance.lock') h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

async function settled(a: TestAppliance): Promise<string> {
  await a.appliance.db.flush();
  return stateHash(a);
}

function expectCoded(t: Test, r: { statusCode: number; json(): { code: string; message: string } }, status: number, code: string, what: string): void {
  t.equal(r.statusCode, status, `${what}: status`);
  const body = r.json();
  t.equal(body.code, code, `${what}: code`);
  t.ok(body.code in CATALOGUE, `${what}: code catalogued`);
  t.equal(CATALOGUE[body.code as keyof typeof CATALOGUE].status, status, `${what}: catalogue status`);
  t.ok(body.message.length > 0, `${what}: message`);
}

t.test('malformed bodies, wrong types, huge bodies, wrong media types, unknown ids', async (t) => {
  const a = await startTestAppliance(t);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: '/srv/d0' }] })).json() as { id: string };
  await a.call('admin', 'POST', '/api/v1/groups', { ...GROUP, members: [src.id] });
  const before = await settled(a);

  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', '{"name": "x", "disks": [', { 'content-type': 'application/json' }), 400, 'SV_ERR_API_BAD_JSON', 'truncated JSON');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', '', { 'content-type': 'application/json' }), 400, 'SV_ERR_API_BAD_JSON', 'empty JSON');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/groups', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'SV_ERR_API_UNSUPPORTED_MEDIA_TYPE', 'form body');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', { name: 42, disks: [] }), 400, 'SV_ERR_API_VALIDATION', 'number as name');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm2', disks: [{ name: 'd', path: 'relative/path' }] }), 400, 'SV_ERR_API_VALIDATION', 'relative disk path');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm2', disks: [{ name: 'd', path: '/a/../etc/shadow' }] }), 400, 'SV_ERR_API_VALIDATION', 'dotdot disk path');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', [1, 2, 3]), 400, 'SV_ERR_API_VALIDATION', 'array body');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', 'null', { 'content-type': 'application/json' }), 400, 'SV_ERR_API_VALIDATION', 'null body');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/groups', { ...GROUP, name: 'g2', __proto__: { admin: true }, constructor: 1 }), 400, 'SV_ERR_API_VALIDATION', 'extra keys');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/groups', `{"name":"g3","syncFrequencyMinutes":15,"recoveryPointTimes":["08:00"],"retention":{"days":1,"maxCount":1},"__proto__":{"x":1}}`, { 'content-type': 'application/json' }), 400, 'SV_ERR_API_BAD_JSON', '__proto__ key');
  const huge = { name: 'vm3', disks: [{ name: 'd', path: `/${'a'.repeat(200_000)}` }] };
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/sources', huge), 413, 'SV_ERR_API_BODY_TOO_LARGE', 'huge body');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/jobs', { kind: 'backup' }), 400, 'SV_ERR_API_VALIDATION', 'backup without source');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/jobs', { kind: 'gc', sourceId: src.id }), 400, 'SV_ERR_API_VALIDATION', 'gc with source');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: src.id, full: true }), 400, 'SV_ERR_API_VALIDATION', 'full on a backup');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/jobs', { kind: 'gc', full: 'yes please' }), 400, 'SV_ERR_API_VALIDATION', 'full not a boolean');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/jobs', { kind: 'restore', sourceId: src.id }), 400, 'SV_ERR_API_VALIDATION', 'restore via /jobs');
  expectCoded(t, await a.call('admin', 'POST', '/api/v1/jobs', { kind: 'format-disk' }), 400, 'SV_ERR_API_VALIDATION', 'unknown kind');
  expectCoded(t, await a.call('viewer', 'GET', '/api/v1/jobs?limit=-1'), 400, 'SV_ERR_API_VALIDATION', 'negative limit');
  expectCoded(t, await a.call('viewer', 'GET', '/api/v1/jobs?state=exploded'), 400, 'SV_ERR_API_VALIDATION', 'unknown state');
  const unknown = '11111111-2222-3333-4444-555555555555';
  for (const url of [`/api/v1/sources/${unknown}`, `/api/v1/groups/${unknown}`, `/api/v1/jobs/${unknown}`, `/api/v1/jobs/${unknown}/log`, `/api/v1/sources/${unknown}/points`, `/api/v1/sources/${src.id}/points/nope`]) {
    expectCoded(t, await a.call('admin', 'GET', url), 404, 'SV_ERR_API_NOT_FOUND', url);
  }
  expectCoded(t, await a.call('admin', 'GET', '/api/v1/sources/..%2F..%2Fetc'), 400, 'SV_ERR_API_VALIDATION', 'traversal in id');
  expectCoded(t, await a.call('admin', 'POST', `/api/v1/jobs/${unknown}/cancel`), 404, 'SV_ERR_API_NOT_FOUND', 'cancel unknown');
  expectCoded(t, await a.call('admin', 'DELETE', `/api/v1/groups/${unknown}`), 404, 'SV_ERR_API_NOT_FOUND', 'delete unknown');
  expectCoded(t, await a.call('admin', 'GET', '/api/v2/anything'), 404, 'SV_ERR_API_NOT_FOUND', 'unknown route');
  t.equal(await settled(a), before, 'state files unchanged');
});

t.test('restore targets outside the allowed roots are refused and nothing is written', async (t) => {
  const a = await startTestAppliance(t);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: '/srv/d0' }] })).json() as { id: string };
  const root = a.appliance.config.restoreRoots[0];
  mkdirSync(root, { recursive: true });
  symlinkSync('/etc', join(root, 'escape'));
  const before = await settled(a);
  const url = `/api/v1/sources/${src.id}/points/p1/restore`;
  for (const target of ['/etc/passwd', `${root}/../../etc/x`, `${root}/a/../../x`, `${root}/escape/cron.d/evil`, `${root}//x`, `${root}/`, root, `${root}-sibling/x`]) {
    expectCoded(t, await a.call('operator', 'POST', url, { target }), 403, 'SV_ERR_API_PATH_NOT_ALLOWED', target);
  }
  expectCoded(t, await a.call('operator', 'POST', url, { target: 'relative/x' }), 400, 'SV_ERR_API_VALIDATION', 'relative');
  expectCoded(t, await a.call('operator', 'POST', url, { target: `${root}/ok.img` }), 404, 'SV_ERR_API_NOT_FOUND', 'allowed target, unknown point');
  t.equal(await settled(a), before, 'no job recorded');
  t.notOk(existsSync('/etc/cron.d/evil'));
});

t.test('bounded fuzz: random bodies and paths never give 5xx or an uncatalogued code', async (t) => {
  const a = await startTestAppliance(t);
  const before = await settled(a);
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const routes: ['POST' | 'PATCH', string][] = [['POST', '/api/v1/sources'], ['POST', '/api/v1/groups'], ['POST', '/api/v1/jobs'], ['POST', '/api/v1/tokens'], ['PATCH', '/api/v1/groups/x'], ['POST', '/api/v1/sources/x/points/y/restore']];
  const pieces = ['{', '}', '[', ']', '"name"', ':', ',', '"', '1e999', 'null', 'true', '"\\u0000"', '-0', '"kind"', '"gc"', '{"a":', '\\', ' '];
  for (let i = 0; i < 300; i++) {
    const [method, url] = routes[rnd(routes.length)];
    const body = i % 3 === 0 ? randomBytes(rnd(64)).toString('latin1') : Array.from({ length: rnd(12) }, () => pieces[rnd(pieces.length)]).join('');
    const r = await a.call('admin', method, url, body, { 'content-type': 'application/json' });
    if (r.statusCode >= 500 || !(r.json().code in CATALOGUE)) {
      t.fail(`${method} ${url} ${JSON.stringify(body)} → ${r.statusCode} ${r.body}`);
      return;
    }
  }
  t.pass('300 random requests answered with catalogued 4xx errors');
  t.equal(await settled(a), before, 'state files unchanged');
});
