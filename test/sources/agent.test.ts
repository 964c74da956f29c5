/**
 * The `agent` disk source through the shared contract (test/sources/contract.ts): the test image served by
 * real agent methods (src/agent/methods/) over a driver of real files, called through AgentRpc — directly
 * (a loopback transport with JSON params/results and copied payloads), and through the engine thread's relay
 * over a real MessagePort (src/sources/agent-relay.ts). Then hostile agents: a payload that does not match
 * its digest, a wrong block count, extents that do not cover the disk, a short read — each
 * SV_ERR_AGENT_BAD_ANSWER, nothing returned. Batching: small ranges asked in one turn travel as view.spans
 * calls (at most BATCH_BYTES / BATCH_RANGES each) with the same results as view.range; an agent without
 * view.spans gets view.range per range; a hostile view.spans answer fails its ranges with a coded error.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import t, { type Test } from 'tap';
import { createMethods } from '../../src/agent/methods/index.js';
import type { AgentHandlers } from '../../src/agent/rpc.js';
import { answerPayload } from '../../src/agent/rpc.js';
import { closePool } from '../../src/pool/index.js';
import { agentOpener, BATCH_BYTES, BATCH_RANGES } from '../../src/sources/agent.js';
import type { RangeRequest, RangeResult } from '../../src/sources/types.js';
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

/** Handlers that count the calls of each method. */
function counting(calls: Map<string, number>, drop: readonly string[] = []): (h: AgentHandlers) => Partial<AgentHandlers> {
  return (h) => {
    const out: Partial<AgentHandlers> = {};
    for (const [m, fn] of Object.entries(h) as Array<[keyof AgentHandlers, (...a: unknown[]) => Promise<unknown>]>) {
      if (drop.includes(m)) continue;
      (out as Record<string, unknown>)[m] = (...a: unknown[]) => {
        calls.set(m, (calls.get(m) ?? 0) + 1);
        return fn(...a);
      };
    }
    return out;
  };
}

/** The same ranges through a file source (the reference results). */
async function expected(raw: string, reqs: RangeRequest[]): Promise<RangeResult[]> {
  const f = await openDiskSource({ kind: 'file', path: raw, format: 'raw' });
  try {
    return await Promise.all(reqs.map((r) => f.backupRange({ ...r, oldDigests: r.oldDigests ? new Uint8Array(r.oldDigests) : null })));
  } finally {
    await f.close();
  }
}

function same(t: Test, got: RangeResult[], want: RangeResult[], what: string): void {
  const norm = (r: RangeResult) => ({ digests: Buffer.from(r.digests).toString('hex'), packed: [...r.packed], flags: [...r.flags], payload: Buffer.from(r.payload).toString('hex') });
  t.same(got.map(norm), want.map(norm), what);
}

t.test('batching: small ranges of one turn go as view.spans calls, same results as view.range', async (t) => {
  const dir = tempDir(t, 'sv-agent-batch-');
  const raw = join(dir, 'disk.raw');
  writeTestImage(raw);
  const calls = new Map<string, number>();
  const { rpc, ref } = await served(t, raw, dir, counting(calls));
  registerOpener('agent', agentOpener(rpc), { replace: true });
  const s = await openDiskSource(ref);
  t.teardown(() => s.close());
  // Every 64 KiB block on its own (the last one partial), first without, then with old digests (some wrong).
  const blocks = Math.ceil(SIZE / BS);
  const one = (i: number, old: Uint8Array | null): RangeRequest => ({ offset: i * BS, length: Math.min(BS, SIZE - i * BS), blockSize: BS, level: COMPRESSION_LEVEL, oldDigests: old });
  const fresh = Array.from({ length: blocks }, (_, i) => one(i, null));
  const got = await Promise.all(fresh.map((r) => s.backupRange(r)));
  same(t, got, await expected(raw, fresh), 'no old digests: the results of view.range');
  t.equal(calls.get('view.spans'), 1, `${blocks} ranges asked in one turn: one view.spans call`);
  t.equal(calls.get('view.range') ?? 0, 0, 'no view.range call');
  const withOld = Array.from({ length: blocks }, (_, i) => one(i, i % 3 === 0 ? new Uint8Array(32).fill(7) : new Uint8Array(got[i]!.digests)));
  same(t, await Promise.all(withOld.map((r) => s.backupRange(r))), await expected(raw, withOld), 'old digests (a third wrong): the same results');
  t.equal(calls.get('view.spans'), 2, 'one more view.spans call');
  // Limits: ranges per call and bytes per call.
  const small = Array.from({ length: BATCH_RANGES + 76 }, (_, i) => ({ offset: i * 4096, length: 4096, blockSize: 4096, level: COMPRESSION_LEVEL, oldDigests: null }));
  same(t, await Promise.all(small.map((r) => s.backupRange(r))), await expected(raw, small), `${small.length} 4 KiB ranges: the same results`);
  t.equal(calls.get('view.spans'), 4, `at most ${BATCH_RANGES} ranges per call: two calls`);
  // Bytes per call: six 1.5 MiB ranges (the same bytes six times) are 9 MiB: five in one call, the sixth alone.
  const big = Array.from({ length: 6 }, () => ({ offset: BS, length: 24 * BS, blockSize: BS, level: COMPRESSION_LEVEL, oldDigests: null }));
  t.ok(5 * 24 * BS <= BATCH_BYTES && 6 * 24 * BS > BATCH_BYTES, 'the sizes straddle BATCH_BYTES');
  same(t, await Promise.all(big.map((r) => s.backupRange(r))), await expected(raw, big), 'large ranges: the same results');
  t.equal(calls.get('view.spans'), 5, `at most ${BATCH_BYTES} bytes per call: five ranges in one call`);
  t.equal(calls.get('view.range'), 1, 'the sixth alone, as view.range');
});

t.test('batching: an agent without view.spans (older) gets view.range per range', async (t) => {
  const dir = tempDir(t, 'sv-agent-old-');
  const raw = join(dir, 'disk.raw');
  writeTestImage(raw);
  const calls = new Map<string, number>();
  const { rpc, ref } = await served(t, raw, dir, counting(calls, ['view.spans']));
  registerOpener('agent', agentOpener(rpc), { replace: true });
  const s = await openDiskSource(ref);
  t.teardown(() => s.close());
  const reqs = Array.from({ length: 20 }, (_, i) => ({ offset: i * BS, length: BS, blockSize: BS, level: COMPRESSION_LEVEL, oldDigests: null }));
  same(t, await Promise.all(reqs.map((r) => s.backupRange(r))), await expected(raw, reqs), 'the same results');
  t.equal(calls.get('view.range'), 20, 'one view.range per range after SV_ERR_AGENT_UNKNOWN_METHOD');
  const before = rpc.calls;
  await Promise.all(reqs.map((r) => s.backupRange(r)));
  t.equal(rpc.calls - before, 20, 'view.spans is not tried again');
});

t.test('batching: a hostile view.spans answer fails its ranges with SV_ERR_AGENT_BAD_ANSWER', async (t) => {
  const dir = tempDir(t, 'sv-agent-spans-bad-');
  const raw = join(dir, 'disk.raw');
  writeTestImage(raw);
  const reqs = Array.from({ length: 8 }, (_, i) => ({ offset: i * BS, length: BS, blockSize: BS, level: COMPRESSION_LEVEL, oldDigests: null }));
  const cases: Array<[string, (h: AgentHandlers) => Partial<AgentHandlers>]> = [
    ['lengths that do not add up to the payload', (h) => ({ ...h, 'view.spans': async (p, pl, sig) => {
      const a = await h['view.spans'](p, pl, sig);
      return { result: { lengths: a.result.lengths.map((n) => n + 1) }, payload: answerPayload(a)! };
    } })],
    ['too few lengths', (h) => ({ ...h, 'view.spans': async (p, pl, sig) => {
      const a = await h['view.spans'](p, pl, sig);
      return { result: { lengths: a.result.lengths.slice(1) }, payload: answerPayload(a)! };
    } })],
    ['a payload byte flipped', (h) => ({ ...h, 'view.spans': async (p, pl, sig) => {
      const a = await h['view.spans'](p, pl, sig);
      const b = Buffer.from(answerPayload(a)!);
      b[b.length - 1]! ^= 0xff;
      return { result: a.result, payload: b };
    } })],
  ];
  for (const [what, wrap] of cases) {
    const { rpc, ref } = await served(t, raw, dir, wrap);
    registerOpener('agent', agentOpener(rpc), { replace: true });
    const s = await openDiskSource(ref);
    const out = await Promise.allSettled(reqs.map((r) => s.backupRange(r)));
    const codes = out.map((o) => (o.status === 'rejected' ? (o.reason as { code?: string }).code : 'ok'));
    t.ok(codes.includes('SV_ERR_AGENT_BAD_ANSWER') && codes.every((c) => c === 'SV_ERR_AGENT_BAD_ANSWER' || c === 'ok'), `${what}: ${codes.join(' ')}`);
    await s.close();
  }
});
