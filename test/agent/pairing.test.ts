/**
 * Pairing and the pinned certificate against a real `shadowvault serve` process over TLS: pairing happy path
 * (credential 0600 with the pin), a used code refused, the agent reconnecting after the appliance restarts,
 * a different certificate on reconnect refused (the credential is not sent), the right one accepted again,
 * a revoked agent refused. Expiry with a manual clock (in-process appliance).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { certFingerprint, pairingKey, pairingProof, parsePairingCode } from '../../src/agent/channel/binding.js';
import { openTransport, postJson } from '../../src/agent/channel/dial.js';
import { credentialPath } from '../../src/agent/credential.js';
import { ManualClock } from '../../src/appliance/clock.js';
import { hasCode } from '../../src/errors/index.js';
import { cli, serve, type Served } from '../api/serve-helper.js';
import { tempDir } from '../helpers/env.js';
import { FixedDriver, listenAppliance, makeCert, once, startAgent, until, vm } from './helpers.js';

async function stop(s: Served): Promise<void> {
  s.proc.kill('SIGTERM');
  await s.exited;
}

t.test('TLS pairing, pinning, restart, other certificate, revoke (real serve process)', async (t) => {
  const a = makeCert(t, 'appliance-a');
  const b = makeCert(t, 'appliance-b');
  const dir = tempDir(t, 'sv-serve-');
  const env = { NODE_EXTRA_CA_CERTS: a.cert };
  let served = await serve(['--data-dir', dir, '--tls-cert', a.cert, '--tls-key', a.key]);
  t.teardown(() => stop(served));
  const port = new URL(served.url).port;
  const cliEnv = { ...env, SHADOWVAULT_URL: served.url, SHADOWVAULT_TOKEN: readFileSync(join(dir, 'admin-token'), 'utf8').trim() };
  const pair = await cli(['agents', 'pair', '--json'], cliEnv);
  t.equal(pair.code, 0, pair.stderr);
  const p = JSON.parse(pair.stdout) as { code: string; expiresAt: string; fingerprint: string };
  t.match(p, { code: /^[0-9a-f]{8}-[0-9a-f]{32}$/, expiresAt: String });
  t.equal(p.fingerprint, certFingerprint(a.pem), 'the appliance shows its certificate fingerprint');

  const dataDir = tempDir(t, 'sv-agent-');
  const driver = new FixedDriver([vm('aaaaaaaa-0000-0000-0000-000000000001', 'web')]);
  const agent = await startAgent(t, { appliance: new URL(served.url), pairCode: p.code, dataDir, name: 'kvm1', driver });
  await once(agent, 'connected');
  const cred = JSON.parse(readFileSync(credentialPath(dataDir), 'utf8')) as { fingerprint: string; agentId: string; credential: string };
  t.equal(statSync(credentialPath(dataDir)).mode & 0o777, 0o600, 'credential stored 0600');
  t.equal(cred.fingerprint, certFingerprint(a.pem), 'the certificate is pinned');
  t.notMatch(readFileSync(join(dir, 'appliance', 'pairings.json'), 'utf8'), p.code.split('-')[1], 'the appliance does not store the secret');

  // the code is single-use
  const again = await startAgent(t, { appliance: new URL(served.url), pairCode: p.code, name: 'kvm2', driver }).then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(again, 'SV_ERR_AGENT_PAIRING_INVALID'), `reuse refused: ${String(again)}`);

  await until('vms listed', async () => {
    const r = await cli(['vms', '--json'], cliEnv);
    const vms = JSON.parse(r.stdout) as { name: string; host: string; online: { possible: boolean; unmet: string[] } }[];
    return vms.length === 1 ? vms : undefined;
  }).then((vms) => t.match(vms[0], { name: 'web', host: 'kvm1', online: { possible: false, unmet: ['guest-agent'] } }));

  // the appliance restarts: the agent comes back on its own
  let back = once(agent, 'connected', 60_000);
  await stop(served);
  served = await serve(['--data-dir', dir, '--tls-cert', a.cert, '--tls-key', a.key, '--listen', `127.0.0.1:${port}`]);
  await back;
  t.pass('reconnected after a restart');

  // another certificate on the same address: refused before the credential is sent
  await stop(served);
  const failed = new Promise<unknown>((resolve) => {
    const on = (err: unknown): void => {
      if (hasCode(err, 'SV_ERR_AGENT_CERT_MISMATCH')) {
        agent.off('failed', on);
        resolve(err);
      }
    };
    agent.on('failed', on);
  });
  served = await serve(['--data-dir', dir, '--tls-cert', b.cert, '--tls-key', b.key, '--listen', `127.0.0.1:${port}`]);
  t.ok(hasCode(await failed, 'SV_ERR_AGENT_CERT_MISMATCH'), 'a different certificate is refused');
  t.notOk(agent.connected);
  const list = await cli(['agents', 'list', '--json'], { ...cliEnv, NODE_EXTRA_CA_CERTS: b.cert });
  t.match(JSON.parse(list.stdout), [{ id: cred.agentId, name: 'kvm1', connected: false }], 'the impostor never saw the agent');

  // the right certificate again: accepted
  back = once(agent, 'connected', 60_000);
  await stop(served);
  served = await serve(['--data-dir', dir, '--tls-cert', a.cert, '--tls-key', a.key, '--listen', `127.0.0.1:${port}`]);
  await back;

  // revoke: its connection closes and its credential stops working
  const refused = once(agent, 'refused', 60_000);
  const rv = await cli(['agents', 'revoke', cred.agentId], cliEnv);
  t.equal(rv.code, 0, rv.stderr);
  t.ok(hasCode(await refused, 'SV_ERR_AGENT_REFUSED'), 'the agent learns it was revoked');
  const r = await cli(['vms'], { ...cliEnv, SHADOWVAULT_TOKEN: cred.credential });
  t.match(r.stderr, /SV_ERR_API_UNAUTHENTICATED/, 'its credential no longer works');
  const hosts = await cli(['hosts', '--json'], cliEnv);
  t.same(JSON.parse(hosts.stdout), [], 'a revoked agent is no host');
});

t.test('an expired code is refused', async (t) => {
  const clock = new ManualClock(Date.now());
  const ap = await listenAppliance(t, { clock });
  const driver = new FixedDriver([]);
  const { code } = (await ap.call('admin', 'POST', '/api/v1/agents/pairing', { ttlMinutes: 15 })).json() as { code: string };
  clock.advance(15 * 60_000 + 1);
  const err = await startAgent(t, { appliance: new URL(ap.url), pairCode: code, driver }).then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_AGENT_PAIRING_INVALID'), String(err));
  t.match(String(err), /expired/);
  t.ok(ap.appliance.agents.registry.list().length === 0, 'no agent');
});

t.test('a proof bound to another certificate (a man in the middle) fails and spends the code', async (t) => {
  const cert = makeCert(t);
  const ap = await listenAppliance(t, { https: { cert: cert.pem, key: cert.keyPem } });
  const { code } = (await ap.call('admin', 'POST', '/api/v1/agents/pairing', {})).json() as { code: string };
  const { id, secret } = parsePairingCode(code);
  const body = (fingerprint: string) => ({ pairingId: id, proof: pairingProof(pairingKey(secret), fingerprint), name: 'h', cluster: null, agentVersion: '1', hypervisor: { name: 'qemu', version: '1' } });
  const url = new URL(ap.url);
  const mitm = await openTransport(url, undefined);
  const err = await postJson(url, mitm, '/api/v1/agents/pair', body('ab'.repeat(32))).then(() => undefined, (e: unknown) => e);
  mitm.socket.destroy();
  t.ok(hasCode(err, 'SV_ERR_AGENT_PAIRING_BINDING'), String(err));
  const honest = await openTransport(url, undefined);
  t.equal(honest.fingerprint, certFingerprint(cert.pem));
  const late = await postJson(url, honest, '/api/v1/agents/pair', body(honest.fingerprint)).then(() => undefined, (e: unknown) => e);
  honest.socket.destroy();
  t.ok(hasCode(late, 'SV_ERR_AGENT_PAIRING_INVALID'), `the code is spent: ${String(late)}`);
});
