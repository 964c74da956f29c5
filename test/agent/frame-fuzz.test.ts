/**
 * Seeded fuzz of the agent channel decoders: frames (byte flips, truncations, random header lengths, random
 * JSON values in every header field), method params (random values per field, view.spans lists among them)
 * and inventory pushes. Each
 * input decodes or fails with its catalogued SV_ERR_AGENT_* code: no crash, no other error.
 */
import t, { type Test } from 'tap';
import { isSvError } from '../../src/errors/index.js';
import { decodeFrame, encodeFrame, type FrameHeader } from '../../src/agent/channel/frame.js';
import { PARAM_SPECS, checkParams } from '../../src/agent/channel/params.js';
import { checkInventory } from '../../src/appliance/agents/inventory-check.js';
import type { AgentMethod } from '../../src/agent/rpc.js';
import { rng } from '../formats/vhd-fixture-helpers.js';
import { vm } from './helpers.js';

const ROUNDS = 3000;

function outcome(fn: () => unknown, allowed: readonly string[]): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (isSvError(err) && allowed.includes(err.code)) return err.code;
    throw err;
  }
}

function tally(t: Test, what: string, seen: Map<string, number>): void {
  t.pass(`${what}: ${JSON.stringify(Object.fromEntries(seen))}`);
}

const TOO_MANY_SPANS = Array.from({ length: 4097 }, () => [0, 1]);
const VALUES = (r: () => number): unknown[] => [[[0, 1]], [[0, -1]], [[1, 2, 3]], [['0', 1]], TOO_MANY_SPANS, null, true, false, 0, -1, 1.5, 2 ** 60, Number.MAX_SAFE_INTEGER, 'x', '', 'é'.repeat(Math.floor(r() * 5000)), [], [1, 2], {}, { a: 1 }, { code: 1 }, { code: 'X', message: 'm', details: 5 }];
const pick = <T>(r: () => number, a: readonly T[]): T => a[Math.floor(r() * a.length)]!;

t.test('mutated frames: a frame or SV_ERR_AGENT_BAD_FRAME', async (t) => {
  const r = rng(0xa9e17);
  const samples: FrameHeader[] = [
    { t: 'call', id: 7, method: 'view.read', params: { session: 's', disk: 0, offset: 4096, length: 65536 } },
    { t: 'result', id: 9, result: { extents: [[0, 1], [2, 3]] } },
    { t: 'error', id: 3, error: { code: 'SV_ERR_AGENT_OFFLINE', message: 'x', details: { a: 1 } } },
    { t: 'cancel', id: 1 },
    { t: 'notice', error: { code: 'SV_ERR_AGENT_BAD_FRAME', message: 'y' } },
  ];
  const seen = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    const base = encodeFrame(pick(r, samples), r() < 0.5 ? Buffer.alloc(Math.floor(r() * 64), 7) : undefined);
    let buf: Buffer;
    const how = r();
    if (how < 0.4) {
      buf = Buffer.from(base);
      for (let i = 1 + Math.floor(r() * 4); i > 0; i--) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
    } else if (how < 0.55) {
      buf = base.subarray(0, Math.floor(r() * base.length));
    } else if (how < 0.7) {
      buf = Buffer.from(base);
      buf.writeUInt32BE(Math.floor(r() * 0x100000000), 0);
    } else if (how < 0.8) {
      buf = Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
    } else {
      // a well-formed frame whose header fields hold random JSON values
      const h: Record<string, unknown> = { ...pick(r, samples) };
      const key = pick(r, ['t', 'id', 'method', 'params', 'result', 'error', 'extra']);
      h[key] = pick(r, VALUES(r));
      buf = encodeFrame(h as unknown as FrameHeader);
    }
    const got = outcome(() => decodeFrame(buf), ['SV_ERR_AGENT_BAD_FRAME']);
    seen.set(got, (seen.get(got) ?? 0) + 1);
  }
  t.ok((seen.get('SV_ERR_AGENT_BAD_FRAME') ?? 0) > ROUNDS / 4, 'most mutations are caught');
  tally(t, `${ROUNDS} frames`, seen);
});

t.test('random params for every method: accepted or SV_ERR_AGENT_BAD_PARAMS', async (t) => {
  const r = rng(0xb0a7);
  const good: { [M in AgentMethod]?: Record<string, unknown> } = {
    'view.read': { session: 's', disk: 0, offset: 0, length: 4096 },
    'view.spans': { session: 's', disk: 0, blockSize: 65536, level: 3, hasOld: false, spans: [[0, 65536], [131072, 65536]] },
    'view.changes': { session: 's', disk: 1, previous: { id: 'b', diskIdentity: 'i', virtualSize: 1 } },
    'view.open': { vmId: 'v', mode: 'auto', allowOnline: true },
    'restore.open': { vmId: 'v', name: 'd', virtualSize: 1, format: 'raw' },
  };
  for (const [m, p] of Object.entries(good)) t.same(checkParams(m as AgentMethod, p), p, `${m} good params pass`);
  const seen = new Map<string, number>();
  const methods = Object.keys(PARAM_SPECS) as AgentMethod[];
  for (let round = 0; round < ROUNDS; round++) {
    const m = pick(r, methods);
    const p: Record<string, unknown> = { ...(good[m] ?? {}) };
    const fields = [...Object.keys(PARAM_SPECS[m]), 'unknown'];
    for (let i = 1 + Math.floor(r() * 3); i > 0; i--) {
      const f = pick(r, fields);
      if (r() < 0.2) delete p[f];
      else p[f] = pick(r, VALUES(r));
    }
    const got = outcome(() => checkParams(m, p), ['SV_ERR_AGENT_BAD_PARAMS']);
    seen.set(got, (seen.get(got) ?? 0) + 1);
  }
  tally(t, `${ROUNDS} param sets`, seen);
});

t.test('mutated inventory pushes: a report or SV_ERR_AGENT_BAD_PARAMS', async (t) => {
  const r = rng(0x1a7e);
  const report = { host: { name: 'h', cluster: null, agentVersion: '1', hypervisor: { name: 'qemu', version: '8' } }, vms: [{ ...vm('a', 'web'), online: { possible: false, unmet: [{ requirement: 'guest-agent', reason: 'none' }] } }] };
  t.same(checkInventory(report), report, 'a good report passes unchanged');
  const seen = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    const copy = JSON.parse(JSON.stringify(report)) as Record<string, unknown>;
    // walk to a random object inside and set a random key to a random value
    let node: Record<string, unknown> = copy;
    for (let depth = Math.floor(r() * 5); depth > 0; depth--) {
      const kids = Object.values(node).filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null);
      if (!kids.length) break;
      node = pick(r, kids);
    }
    const keys = Object.keys(node);
    const key = keys.length && r() < 0.9 ? pick(r, keys) : 'extra';
    node[key] = pick(r, VALUES(r));
    const got = outcome(() => checkInventory(copy), ['SV_ERR_AGENT_BAD_PARAMS']);
    seen.set(got, (seen.get(got) ?? 0) + 1);
  }
  tally(t, `${ROUNDS} reports`, seen);
});
