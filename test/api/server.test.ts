/**
 * The real thing: `shadowvault serve` as a process on a loopback port, real HTTP (and HTTPS), the CLI's
 * remote commands against it, the first-start admin token file, graceful shutdown on SIGTERM. The remote
 * commands run the CLI's main() in this process (test/helpers/cli.ts) against the appliance process; the
 * refusals that are about exit codes, TLS trust (NODE_EXTRA_CA_CERTS) and serve itself are real processes.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { cliInProcess as cliIn } from '../helpers/cli.js';
import { cli, serve } from './serve-helper.js';

t.test('serve: first start token file, real HTTP, CLI --url, SIGTERM, restart keeps the token', async (t) => {
  const home = tempDir(t);
  const env = { XDG_DATA_HOME: home, HOME: home };
  const s = await serve(['--source-root', '/srv'], env);
  t.teardown(() => s.proc.kill('SIGKILL'));
  const tokenFile = join(home, 'shadowvault', 'admin-token');
  const warn = s.lines.find((l) => l.tokenFile === tokenFile && String(l.msg).includes('first start'));
  t.ok(warn, 'logs where the admin token is');
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'token file is 0600');
  const token = readFileSync(tokenFile, 'utf8').trim();
  t.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const health = await fetch(`${s.url}/healthz`);
  t.equal(health.status, 200);
  const anon = await fetch(`${s.url}/api/v1/jobs`);
  t.equal(anon.status, 401);
  t.equal(((await anon.json()) as { code: string }).code, 'SV_ERR_API_UNAUTHENTICATED');
  const metrics = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(metrics.status, 200);
  t.match(await metrics.text(), /# TYPE shadowvault_jobs gauge/);

  const remote = { ...env, SHADOWVAULT_URL: s.url };
  const add = await cliIn(['sources', 'add', '--name', 'vm-a', '--disk', 'disk0=/srv/a.vhdx'], remote);
  t.equal(add.code, 0, add.stderr);
  const grp = await cliIn(['groups', 'create', '--name', 'gold', '--members', 'vm-a', '--sync-minutes', '15', '--points', '08:00,20:00', '--retention-days', '7', '--retention-count', '10', '--json'], remote);
  t.equal(grp.code, 0, grp.stderr);
  t.match(JSON.parse(grp.stdout), { name: 'gold', syncFrequencyMinutes: 15, recoveryPointTimes: ['08:00', '20:00'] });
  const listed = await cliIn(['groups', 'list', '--url', s.url, '--token-file', tokenFile], { HOME: '/nonexistent', XDG_DATA_HOME: '/nonexistent' });
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, /gold\s+every 15 min/);
  const bad = await cli(['jobs', 'list', '--url', s.url], { ...env, SHADOWVAULT_TOKEN: 'svt_wrong' });
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error SV_ERR_API_UNAUTHENTICATED: /);
  const gone = await cliIn(['jobs', 'list', '--url', 'http://127.0.0.1:9'], { ...env, SHADOWVAULT_TOKEN: token });
  t.match(gone.stderr, /SV_ERR_API_REMOTE/);
  const badState = await cliIn(['jobs', 'list', '--state', 'nope'], remote);
  t.match(badState.stderr, /SV_ERR_API_VALIDATION/);
  const verify = await cliIn(['jobs', 'start', 'verify', '--wait', '--json'], remote);
  t.equal(verify.code, 0, verify.stderr);
  const vj = JSON.parse(verify.stdout) as { id: string; state: string };
  t.equal(vj.state, 'succeeded');
  const log = await cliIn(['jobs', 'log', vj.id], remote);
  t.match(log.stdout, /succeeded/);
  const cancel = await cliIn(['jobs', 'cancel', vj.id], remote);
  t.equal(cancel.code, 1);
  t.match(cancel.stderr, /^error SV_ERR_JOB_NOT_CANCELLABLE: /);
  const shown = await cliIn(['jobs', 'show', vj.id], remote);
  t.match(shown.stdout, new RegExp(`^${vj.id}\\s+verify\\s+succeeded`));
  const sources = await cliIn(['sources', 'list', '--json'], remote);
  t.equal((JSON.parse(sources.stdout) as unknown[]).length, 1);

  s.proc.kill('SIGTERM');
  t.equal(await s.exited, 0, 'graceful exit on SIGTERM');
  t.notOk(existsSync(join(home, 'shadowvault', 'appliance', 'appliance.lock')), 'lock released');

  const again = await serve(['--source-root', '/srv'], env);
  t.teardown(() => again.proc.kill('SIGKILL'));
  t.notOk(again.lines.some((l) => String(l.msg).includes('first start')), 'no second token');
  t.equal(readFileSync(tokenFile, 'utf8').trim(), token);
  const groups = await fetch(`${again.url}/api/v1/groups`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(((await groups.json()) as unknown[]).length, 1, 'groups survived the restart');
  again.proc.kill('SIGINT');
  t.equal(await again.exited, 0, 'graceful exit on SIGINT');
});

t.test('serve with TLS', async (t) => {
  const openssl = requireTool('openssl');
  const dir = tempDir(t);
  run(openssl, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  const s = await serve(['--data-dir', join(dir, 'data'), '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
  t.teardown(() => s.proc.kill('SIGKILL'));
  t.match(s.url, /^https:/);
  const token = readFileSync(join(dir, 'data', 'admin-token'), 'utf8').trim();
  const r = await cli(['jobs', 'list', '--url', s.url, '--json'], { SHADOWVAULT_TOKEN: token, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') });
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), []);
  const missing = await cli(['serve', '--data-dir', join(dir, 'd2'), '--tls-cert', join(dir, 'none.pem'), '--tls-key', join(dir, 'key.pem'), '--listen', '127.0.0.1:0'], {});
  t.equal(missing.code, 1);
  t.match(missing.stderr, /SV_ERR_APPLIANCE_TLS/);
  const half = await cli(['serve', '--tls-cert', join(dir, 'cert.pem')], {});
  t.equal(half.code, 2);
  s.proc.kill('SIGTERM');
  t.equal(await s.exited, 0);
});

t.test('a second appliance on the same data folder is refused', async (t) => {
  const dir = tempDir(t);
  const s = await serve(['--data-dir', dir]);
  t.teardown(() => s.proc.kill('SIGKILL'));
  const second = await cli(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0'], {});
  t.equal(second.code, 1);
  t.match(second.stderr, /SV_ERR_APPLIANCE_LOCKED/);
  s.proc.kill('SIGTERM');
  await s.exited;
});
