/**
 * The control channel end to end on loopback: pairing, the agent's inventory push, appliance → agent calls
 * (many in flight, payloads both ways, coded errors, cancellation), OFFLINE and DISCONNECTED, byte counts.
 */
import t from 'tap';
import { SvError, hasCode } from '../../src/errors/index.js';
import type { AgentHandlers } from '../../src/agent/rpc.js';
import { FixedDriver, listenAppliance, once, startAgent, until, vm } from './helpers.js';

t.test('pair, push inventory, calls both ways, cancel, cut', async (t) => {
  const ap = await listenAppliance(t);
  const pairing = await ap.call('admin', 'POST', '/api/v1/agents/pairing', {});
  t.equal(pairing.statusCode, 201, pairing.body);
  const { code } = pairing.json() as { code: string };

  let release: (() => void) | undefined;
  const handlers: Partial<AgentHandlers> = {
    'view.read': async (p, _payload, signal) => {
      if (p.offset === 999) {
        await new Promise<void>((resolve, reject) => {
          release = resolve;
          signal.addEventListener('abort', () => reject(new SvError('SV_ERR_CORE_CANCELLED', 'aborted', {})), { once: true });
        });
      }
      return { result: { length: p.length }, payload: Buffer.alloc(p.length, p.offset & 0xff) };
    },
    'restore.write': async (p, payload) => ({ result: { written: (payload?.length ?? 0) + p.offset } }),
  };
  const driver = new FixedDriver([vm('11111111-1111-1111-1111-111111111111', 'web')]);
  const agent = await startAgent(t, { appliance: new URL(ap.url), pairCode: code, driver, handlers });
  const id = agent.agentId!;
  t.ok(id);
  await until('inventory', () => (ap.appliance.agents.vms().length === 1 ? true : undefined));
  const vms = ap.appliance.agents.vms();
  t.equal(vms[0].name, 'web');
  t.equal(vms[0].host, 'host-a');
  t.same(vms[0].online.unmet, ['guest-agent']);

  t.match(await ap.appliance.metrics.text(), new RegExp(`shadowvault_agent_up\\{agent="${id}"\\} 1`), 'agent up metric');
  const rpc = ap.appliance.agents.rpc;
  // many calls in flight, payloads back
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => rpc.call(id, 'view.read', { session: 's', disk: 0, offset: i + 100, length: 1000 + i })));
  for (const [i, a] of answers.entries()) {
    t.equal(a.result.length, 1000 + i);
    t.equal(a.payload?.length, 1000 + i);
    t.equal(a.payload?.[0], (i + 100) & 0xff);
  }
  // payload to the agent
  const w = await rpc.call(id, 'restore.write', { handle: 'h', offset: 5 }, Buffer.alloc(4096));
  t.equal(w.result.written, 4101);
  // inventory.get served by the agent itself
  const inv = await rpc.call(id, 'inventory.get', {});
  t.equal(inv.result.vms[0].id, '11111111-1111-1111-1111-111111111111');
  // a method the agent does not serve, wrong params: coded errors, channel stays up
  await t.rejects(rpc.call(id, 'view.commit', { session: 's' }), { code: 'SV_ERR_AGENT_UNKNOWN_METHOD' });
  await t.rejects(rpc.call(id, 'view.read', { session: 's', disk: -1, offset: 0, length: 1 }), { code: 'SV_ERR_AGENT_BAD_PARAMS' });
  await t.rejects(rpc.call(id, 'view.read', { session: 's', disk: 0, offset: 0, length: 1, extra: 1 } as never), { code: 'SV_ERR_AGENT_BAD_PARAMS' });
  // cancellation: the caller rejects at once and the handler sees its signal abort
  const ctl = new AbortController();
  const pending = rpc.call(id, 'view.read', { session: 's', disk: 0, offset: 999, length: 1 }, undefined, ctl.signal);
  await until('handler running', () => release);
  ctl.abort();
  await t.rejects(pending, { code: 'SV_ERR_CORE_CANCELLED' });
  release = undefined;
  // the byte counter counts both ways
  const b = rpc.bytes(id);
  t.ok(b.received > 50 * 1000, `received ${b.received}`);
  t.ok(b.sent > 4096, `sent ${b.sent}`);
  // a cut mid-call: the pending call rejects DISCONNECTED, the agent reconnects by itself
  const stuck = rpc.call(id, 'view.read', { session: 's', disk: 0, offset: 999, length: 1 });
  await until('handler running again', () => release);
  const back = once(agent, 'connected');
  for (const c of ap.app.websocketServer.clients) c.terminate();
  const err = await stuck.then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_AGENT_DISCONNECTED'), String(err));
  await back;
  await until('reconnected', () => (ap.appliance.agents.connected(id) ? true : undefined));
  t.equal((await rpc.call(id, 'view.read', { session: 's', disk: 0, offset: 1, length: 3 })).payload?.length, 3);
  // inventory changes are pushed without asking
  driver.vms = [...driver.vms, vm('22222222-2222-2222-2222-222222222222', 'db')];
  await until('second VM', () => (ap.appliance.agents.vms().length === 2 ? true : undefined));
  // offline once stopped
  await agent.stop();
  await until('offline', () => (ap.appliance.agents.connected(id) ? undefined : true));
  await t.rejects(rpc.call(id, 'inventory.get', {}), { code: 'SV_ERR_AGENT_OFFLINE' });
  t.match(await ap.appliance.metrics.text(), new RegExp(`shadowvault_agent_up\\{agent="${id}"\\} 0`), 'agent down metric');
  await t.rejects(rpc.call('no-such-agent', 'inventory.get', {}), { code: 'SV_ERR_AGENT_OFFLINE' });
});
