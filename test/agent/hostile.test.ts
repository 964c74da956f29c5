/**
 * A hostile agent (a real paired credential, raw frames on the real channel): every malformed frame, unknown
 * method or id, wrong params, out-of-scope report gets a coded answer, an over-large frame closes only its
 * own connection, and the appliance keeps serving the other agents. Plus the agent credential's scope on
 * the HTTP API and the refusal of plain http beyond loopback.
 */
import t from 'tap';
import type { WebSocket } from 'ws';
import { NO_TLS, pairingKey, pairingProof, parsePairingCode } from '../../src/agent/channel/binding.js';
import { openChannel, openTransport, postJson } from '../../src/agent/channel/dial.js';
import { decodeFrame, encodeFrame, type Frame, type FrameHeader } from '../../src/agent/channel/frame.js';
import type { PairAnswer } from '../../src/agent/host-agent.js';
import { hasCode } from '../../src/errors/index.js';
import { FixedDriver, listenAppliance, startAgent, until, vm, type Listening } from './helpers.js';

async function pairRaw(ap: Listening, name: string): Promise<PairAnswer> {
  const { code } = (await ap.call('admin', 'POST', '/api/v1/agents/pairing', {})).json() as { code: string };
  const { id, secret } = parsePairingCode(code);
  const url = new URL(ap.url);
  const tr = await openTransport(url, undefined);
  const answer = await postJson<PairAnswer>(url, tr, '/api/v1/agents/pair', { pairingId: id, proof: pairingProof(pairingKey(secret), NO_TLS), name, cluster: null, agentVersion: 'x', hypervisor: { name: 'qemu', version: '1' } });
  tr.socket.destroy();
  return answer;
}

class RawAgent {
  frames: Frame[] = [];
  closed: { code: number } | undefined;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => this.frames.push(decodeFrame(d)));
    ws.on('close', (code) => (this.closed = { code }));
  }
  send(h: FrameHeader | Buffer | string, payload?: Uint8Array): void {
    this.ws.send(typeof h === 'string' || Buffer.isBuffer(h) ? h : encodeFrame(h, payload));
  }
  async next(pred: (h: FrameHeader) => boolean = () => true): Promise<FrameHeader> {
    const f = await until('a frame', () => {
      const i = this.frames.findIndex((x) => pred(x.header));
      return i < 0 ? undefined : this.frames.splice(i, 1)[0];
    }, 10_000);
    return f.header;
  }
}

async function openRaw(ap: Listening, credential: string): Promise<RawAgent> {
  const url = new URL(ap.url);
  return new RawAgent(await openChannel(url, await openTransport(url, undefined), credential));
}

const report = (host: string, ids: string[]) => ({ host: { name: host, cluster: null, agentVersion: 'x', hypervisor: { name: 'qemu', version: '1' } }, vms: ids.map((id) => ({ ...vm(id, `vm-${id}`), online: { possible: true, unmet: [] } })) });
const codeOf = (h: FrameHeader): string | undefined => (h.t === 'error' || h.t === 'notice' ? h.error.code : undefined);

t.test('hostile frames get coded answers; the appliance keeps serving', async (t) => {
  const ap = await listenAppliance(t, { maxFrame: 1 << 20 });
  // an honest agent alongside
  const { code } = (await ap.call('admin', 'POST', '/api/v1/agents/pairing', {})).json() as { code: string };
  const honest = await startAgent(t, { appliance: new URL(ap.url), pairCode: code, name: 'honest', driver: new FixedDriver([vm('vm-honest', 'web')]), maxFrame: 1 << 20 });
  await until('honest inventory', () => (ap.appliance.agents.vms().length === 1 ? true : undefined));

  const cred = await pairRaw(ap, 'evil');
  const evil = await openRaw(ap, cred.credential);
  await until('evil connected', () => (ap.appliance.agents.connected(cred.agentId) ? true : undefined));

  evil.send('{"t":"call"}');
  t.equal(codeOf(await evil.next()), 'SV_ERR_AGENT_BAD_FRAME', 'text message');
  evil.send(Buffer.from([0, 0, 0, 200, 1, 2]));
  t.equal(codeOf(await evil.next()), 'SV_ERR_AGENT_BAD_FRAME', 'header length past the frame');
  evil.send(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{x]')]));
  t.equal(codeOf(await evil.next()), 'SV_ERR_AGENT_BAD_FRAME', 'header not JSON');
  evil.send(encodeFrame({ t: 'call', id: 'one', method: 'inventory.push', params: {} } as unknown as FrameHeader));
  t.equal(codeOf(await evil.next()), 'SV_ERR_AGENT_BAD_FRAME', 'id of the wrong type');
  evil.send({ t: 'call', id: 1, method: 'view.read', params: {} });
  t.equal(codeOf(await evil.next((h) => h.t === 'error' && h.id === 1)), 'SV_ERR_AGENT_UNKNOWN_METHOD', 'a method the appliance does not serve');
  evil.send({ t: 'result', id: 4242, result: {} });
  t.equal(codeOf(await evil.next()), 'SV_ERR_AGENT_UNKNOWN_ID', 'an answer to no call');
  evil.send({ t: 'call', id: 2, method: 'inventory.push', params: { inventory: { host: 5 } } });
  t.equal(codeOf(await evil.next((h) => h.t === 'error' && h.id === 2)), 'SV_ERR_AGENT_BAD_PARAMS', 'wrong types');
  const big = report('evil', ['x']);
  big.vms[0].disks = Array.from({ length: 300 }, () => big.vms[0].disks[0]);
  evil.send({ t: 'call', id: 3, method: 'inventory.push', params: { inventory: big } });
  t.equal(codeOf(await evil.next((h) => h.t === 'error' && h.id === 3)), 'SV_ERR_AGENT_BAD_PARAMS', 'too many disks');
  evil.send({ t: 'call', id: 4, method: 'inventory.push', params: { inventory: report('honest', ['x']) } });
  t.equal(codeOf(await evil.next((h) => h.t === 'error' && h.id === 4)), 'SV_ERR_AGENT_SCOPE', 'another agent\'s host');
  evil.send({ t: 'call', id: 5, method: 'inventory.push', params: { inventory: report('evil', ['vm-honest']) } });
  t.equal(codeOf(await evil.next((h) => h.t === 'error' && h.id === 5)), 'SV_ERR_AGENT_SCOPE', 'another agent\'s VM');
  t.same(ap.appliance.agents.vms().map((v) => `${v.host}/${v.id}`), ['honest/vm-honest'], 'nothing of it was stored');
  evil.send({ t: 'call', id: 6, method: 'inventory.push', params: { inventory: report('evil', ['vm-evil']) } });
  t.equal((await evil.next((h) => h.t !== 'notice' && h.id === 6)).t, 'result', 'its own host is fine');
  // the agent side answers the appliance's calls: a wrong answer id from the appliance's view is the agent's business;
  // an over-large frame closes this connection only
  evil.send(Buffer.alloc((1 << 20) + 10));
  await until('evil closed', () => evil.closed);
  t.equal(evil.closed?.code, 1009, 'closed with 1009 (message too big)');
  await until('evil offline', () => (ap.appliance.agents.connected(cred.agentId) ? undefined : true));
  t.ok(honest.connected, 'the honest agent stays connected');
  const inv = await ap.appliance.agents.rpc.call(honest.agentId!, 'inventory.get', {});
  t.equal(inv.result.vms[0].id, 'vm-honest', 'and answers calls');
  t.equal((await ap.call(null, 'GET', '/healthz')).statusCode, 200);
  // the appliance refuses to send an over-large call
  await t.rejects(ap.appliance.agents.rpc.call(honest.agentId!, 'restore.write', { handle: 'h', offset: 0 }, Buffer.alloc(1 << 20)), { code: 'SV_ERR_AGENT_FRAME_TOO_LARGE' });
  t.ok(honest.connected);
});

t.test('an agent credential: only agent routes; 403 on reader, operator and admin routes', async (t) => {
  const ap = await listenAppliance(t);
  const cred = await pairRaw(ap, 'h1');
  const as = { token: cred.credential };
  for (const [method, url, body] of [['GET', '/api/v1/sources'], ['GET', '/api/v1/vms'], ['GET', '/api/v1/hosts'], ['GET', '/metrics'], ['POST', '/api/v1/jobs', { kind: 'gc' }], ['GET', '/api/v1/agents'], ['POST', '/api/v1/agents/pairing', {}], ['DELETE', `/api/v1/agents/${cred.agentId}`], ['GET', '/api/v1/tokens']] as const) {
    const r = await ap.call(as, method, url, body);
    t.equal(r.statusCode, 403, `${method} ${url}`);
    t.equal(r.json().code, 'SV_ERR_API_FORBIDDEN');
  }
  const self = await ap.call(as, 'GET', '/api/v1/agents/self');
  t.equal(self.statusCode, 200);
  t.equal(self.json().id, cred.agentId);
  // and other roles cannot use agent routes
  t.equal((await ap.call('admin', 'GET', '/api/v1/agents/self')).statusCode, 403);
});

t.test('plain http beyond loopback is refused on both sides', async (t) => {
  const ap = await listenAppliance(t);
  const r = await ap.app.inject({ method: 'POST', url: '/api/v1/agents/pair', remoteAddress: '192.0.2.7', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ pairingId: '00000000', proof: '0'.repeat(64), name: 'h', cluster: null, agentVersion: '1', hypervisor: { name: 'qemu', version: '1' } }) });
  t.equal(r.statusCode, 403);
  t.equal(r.json().code, 'SV_ERR_AGENT_INSECURE');
  const err = await openTransport(new URL('http://192.0.2.7:8470'), undefined).then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_AGENT_INSECURE'), String(err));
});
