/**
 * The `agent` disk source through the shared contract (test/sources/contract.ts): the test image served by
 * real agent methods (src/agent/methods/) over a driver of real files, called through AgentRpc — directly
 * (a loopback transport with JSON params/results and copied payloads), and through the engine thread's relay
 * over a real MessagePort (src/sources/agent-relay.ts). Then hostile agents: a payload that does not match
 * its digest, a wrong block count, extents that do not cover the disk, a short read — each
 * SV_ERR_AGENT_BAD_ANSWER, nothing returned.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import t, { type Test } from 'tap';
import { createMethods } from '../../src/agent/methods/index.js';
import type { AgentHandlers } from '../../src/agent/rpc.js';
import { answerPayload } from '../../src/agent/rpc.js';
import { closePool } from '../../src/pool/index.js';
import { agentOpener } from '../../src/sources/agent.js';
import { RelayRpc, serveRelay } from '../../src/sources/agent-relay.js';
import { openDiskSource, registerOpener } from '../../src/sources/registry.js';
import type { AgentSourceRef, DiskSource } from '../../src/sources/types.js';
import { COMPRESSION_LEVEL } from '../../storage/layout.js';
import { FileDriver } from '../helpers/file-driver.js';
import { LoopbackRpc } from '../helpers/loopback-rpc.js';
import { tempDir } from '../helpers/env.js';
import { BS, SIZE, sourceContract, writeTestImage } from './contract.js';

t.teardown(closePool);

/** Agent methods over a one-VM file driver holding `rawPath`; a view opened; its disk 0 as an agent ref. */
async function served(t: Test, rawPath: string, dir: string, wrap: (h: AgentHandlers) => Partial<AgentHandlers> = (h) => h): Promise<{ rpc: LoopbackRpc; ref: AgentSourceRef }> {
  const snaps = join(dir, `snaps-${Math.random().toString(16).slice(2)}`);
  mkdirSync(snaps, { recursive: true });
  const methods = createMethods({ driver: new FileDriver([{ id: 'vm-1', name: 'vm1', disks: [rawPath] }], snaps), open: openDiskSource, restoreRoots: [] });
  t.teardown(() => methods.close());
  const handlers = { ...methods.handlers } as AgentHandlers;
  const rpc = new LoopbackRpc('agent-1', wrap(handlers));
  const { result } = await rpc.call('agent-1', 'view.open', { vmId: 'vm-1', mode: 'auto', allowOnline: false });
  return { rpc, ref: { kind: 'agent', agentId: 'agent-1', session: result.session, disk: 0, name: result.disks[0]!.name, virtualSize: result.disks[0]!.virtualSize } };
}

sourceContract(t, 'agent (loopback)', async (t, rawPath, dir) => {
  const { rpc, ref } = await served(t, rawPath, dir);
  registerOpener('agent', agentOpener(rpc), { replace: true });
  return ref;
}, { transfer: 'some' });

sourceContract(t, 'agent (through the engine-thread relay)', async (t, rawPath, dir) => {
  const { rpc, ref } = await served(t, rawPath, dir);
  const { port1, port2 } = new MessageChannel();
  const stop = serveRelay(port1, rpc);
  const relay = new RelayRpc(port2);
  t.teardown(() => {
    stop();
    port2.close();
  });
  registerOpener('agent', agentOpener(relay), { replace: true });
  return ref;
}, { transfer: 'some' });

type Use = (s: DiskSource) => Promise<unknown>;

t.test('hostile agents: every bad answer is SV_ERR_AGENT_BAD_ANSWER', async (t) => {
  const dir = tempDir(t, 'sv-agent-src-');
  const raw = join(dir, 'disk.raw');
  writeTestImage(raw);
  const req = { offset: 0, length: 8 * BS, blockSize: BS, level: COMPRESSION_LEVEL, oldDigests: null };
  const cases: Array<[string, (h: AgentHandlers) => Partial<AgentHandlers>, Use]> = [
    ['a payload byte flipped (does not match its digest)', (h) => ({ ...h, 'view.range': async (p, pl, sig) => {
      const a = await h['view.range'](p, pl, sig);
      const b = Buffer.from(answerPayload(a)!);
      b[b.length - 1]! ^= 0xff;
      return { result: a.result, payload: b };
    } }), (s) => s.backupRange(req)],
    ['a wrong block count', (h) => ({ ...h, 'view.range': async (p, pl, sig) => ({ ...(await h['view.range'](p, pl, sig)), result: { count: 3 } }) }), (s) => s.backupRange(req)],
    ['extents that stop short', (h) => ({ ...h, 'view.extents': async () => ({ result: { extents: [{ offset: 0, length: BS, kind: 'data' as const }] } }) }), (s) => s.extents()],
    ['extents out of order', (h) => ({ ...h, 'view.extents': async () => ({ result: { extents: [{ offset: BS, length: SIZE - BS, kind: 'data' as const }, { offset: 0, length: BS, kind: 'data' as const }] } }) }), (s) => s.extents()],
    ['a short read', (h) => ({ ...h, 'view.read': async (p, pl, sig) => {
      const a = await h['view.read'](p, pl, sig);
      return { ...a, payload: a.payload!.subarray(1) };
    } }), (s) => s.read(0, 4096)],
  ];
  for (const [what, wrap, use] of cases) {
    const { rpc, ref } = await served(t, raw, dir, wrap);
    registerOpener('agent', agentOpener(rpc), { replace: true });
    const s = await openDiskSource(ref);
    await t.rejects(use(s), { code: 'SV_ERR_AGENT_BAD_ANSWER' }, what);
    await s.close();
  }
});
