/**
 * Seeded fuzz of the NBD client against a server whose every outgoing message may be mutated (bytes
 * flipped, u32 fields set to extreme values, cut short, duplicated, followed by garbage), withheld, or
 * followed by a hang-up. Each session (connect, reads and block-status requests in flight, close) must end
 * with results or SV_ERR_NBD_* errors: no other error, no unhandled rejection, no hang (every wait is
 * bounded by the client's timeouts), and external memory stays bounded although peers announce up to 4 GiB.
 */
import t from 'tap';
import { prng } from '../../bench/data.js';
import { SvError } from '../../src/errors/index.js';
import { NbdClient } from '../../src/nbd/client.js';
import { CONTEXT } from '../../src/nbd/protocol.js';
import { tempDir } from '../helpers/env.js';
import { EXPORT_SIZE, hostileServer } from './hostile-server.js';

const SESSIONS = 120;
const SPECIAL = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff];

function mutator(rand: () => number): (buf: Buffer) => Buffer | 'stall' | 'close' {
  return (buf) => {
    const r = rand();
    if (r > 0.12) return buf;
    const pick = rand();
    if (pick < 0.05) return 'stall';
    if (pick < 0.12) return 'close';
    const b = Buffer.from(buf);
    if (pick < 0.5 && b.length >= 4) b.writeUInt32BE(SPECIAL[Math.floor(rand() * SPECIAL.length)]!, Math.floor(rand() * (b.length - 3)));
    else if (pick < 0.75) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
    else if (pick < 0.85) return b.subarray(0, Math.floor(rand() * b.length));
    else if (pick < 0.93) return Buffer.concat([b, b]);
    else return Buffer.concat([b, Buffer.alloc(1 + Math.floor(rand() * 64), Math.floor(rand() * 256))]);
    return b;
  };
}

t.test('mutated server streams end in results or coded NBD errors', async (t) => {
  const rand = prng(0x4e42);
  const dir = tempDir(t);
  const sock = await hostileServer(t, dir, { mutate: mutator(rand) });
  const outcomes = new Map<string, number>();
  const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  const bad: string[] = [];
  const check = (err: unknown): void => {
    if (err instanceof SvError && err.code.startsWith('SV_ERR_NBD_')) count(err.code);
    else bad.push(String((err as Error)?.stack ?? err));
  };
  let peakExternal = 0;
  for (let i = 0; i < SESSIONS; i++) {
    let client: NbdClient;
    try {
      client = await NbdClient.connect({
        target: { path: sock },
        metaContexts: [CONTEXT.BASE_ALLOCATION, 'qemu:dirty-bitmap:b0'],
        handshakeTimeoutMs: 250,
        requestTimeoutMs: 250,
        maxInFlight: 4,
      });
    } catch (err) {
      check(err);
      continue;
    }
    const ops: Promise<unknown>[] = [];
    for (let k = 0; k < 6; k++) {
      const offset = Math.floor(rand() * 64) * 4096;
      const length = 512 * (1 + Math.floor(rand() * 64));
      ops.push(rand() < 0.6 ? client.read(offset, Math.min(length, EXPORT_SIZE - offset)) : client.blockStatus(offset, length, CONTEXT.BASE_ALLOCATION));
    }
    for (const o of await Promise.allSettled(ops)) {
      if (o.status === 'fulfilled') count('ok');
      else check(o.reason);
    }
    await client.close();
    peakExternal = Math.max(peakExternal, process.memoryUsage().arrayBuffers);
  }
  t.same(bad, [], 'no uncoded errors');
  t.ok((outcomes.get('ok') ?? 0) > 50, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  t.ok(outcomes.size >= 4, 'several kinds of failure were provoked');
  t.ok(peakExternal < 256 * 1024 * 1024, `peak external memory ${peakExternal} bytes`);
});
