/**
 * Seeded fuzz of the view.range answer decoder: mutated valid answers (bytes flipped, u32 fields set to
 * edge values, cut short, extended, records duplicated) and random buffers. Each decode either returns a
 * result bounded by the range (digests count × 32, payload no larger than the input) or throws
 * SV_ERR_AGENT_BAD_ANSWER; never anything else, never a hang.
 */
import t from 'tap';
import { prng, textLike } from '../../bench/data.js';
import { SvError } from '../../src/errors/index.js';
import { decodeRangeAnswer, encodeRangeAnswer } from '../../src/agent/methods/range-codec.js';
import { packBlocks } from '../../src/native/index.js';
import type { RangeResult } from '../../src/sources/types.js';

const ITERATIONS = 3000;
const BS = 4096;
const COUNT = 8;
const LENGTH = COUNT * BS - 100;
const SPECIAL = [0, 1, 7, 8, 41, 4096, 0x7fffffff, 0x80000000, 0xffffffff];

/** A valid answer: blocks 1, 3, 6 packed from text (zstd) and random (raw) data, block 5 zeroed. */
function valid(): Buffer {
  const rand = prng(3);
  const data = Buffer.alloc(LENGTH);
  textLike(BS, 1).copy(data, 1 * BS);
  for (let k = 3 * BS; k < 4 * BS; k++) data[k] = Math.floor(rand() * 256);
  textLike(LENGTH - 6 * BS, 2).copy(data, 6 * BS);
  const r = packBlocks(data, BS, 3);
  const packed = [...Array(r.count).keys()].filter((i) => r.flags[i] !== 0);
  const res: RangeResult = {
    digests: r.digests, packed: Uint32Array.from(packed), flags: Uint8Array.from(packed.map((i) => r.flags[i]!)),
    offsets: Uint32Array.from([...packed.map((i) => r.offsets[i]!), r.offsets[packed[packed.length - 1]! + 1]!]), payload: r.payload,
  };
  const old = new Uint8Array(COUNT * 32).fill(9);
  old.set(r.digests.subarray(0, 32), 0);
  return encodeRangeAnswer(res, old, COUNT);
}

function mutate(orig: Buffer, rand: () => number): Buffer {
  let b = Buffer.from(orig);
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.15 && b.length > 0) b = b.subarray(0, Math.floor(rand() * b.length));
    else if (r < 0.25) b = Buffer.concat([b, Buffer.alloc(1 + Math.floor(rand() * 64), Math.floor(rand() * 256))]);
    else if (r < 0.3) b = Buffer.concat([b, b.subarray(0, Math.floor(rand() * b.length))]);
    else if (r < 0.65 && b.length >= 4) b.writeUInt32LE(SPECIAL[Math.floor(rand() * SPECIAL.length)]!, Math.floor(rand() * (b.length - 3)));
    else if (b.length > 0) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
  }
  return b;
}

t.test('fuzz the range answer decoder: a bounded result or SV_ERR_AGENT_BAD_ANSWER', (t) => {
  const rand = prng(0x52414e47);
  const sample = valid();
  const shape = { count: COUNT, blockSize: BS, length: LENGTH };
  const old = new Uint8Array(COUNT * 32).fill(9);
  t.doesNotThrow(() => decodeRangeAnswer(sample, shape, old), 'the valid sample decodes');
  const seen = new Map<string, number>();
  for (let i = 0; i < ITERATIONS; i++) {
    const input = rand() < 0.1 ? Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))) : mutate(sample, rand);
    try {
      const r = decodeRangeAnswer(input, shape, rand() < 0.5 ? old : null);
      if (r.digests.length !== COUNT * 32 || r.payload.length > input.length || r.packed.length > COUNT || r.offsets.length !== r.packed.length + 1) {
        t.fail(`input ${input.toString('hex')} decoded to an unbounded result`);
        break;
      }
      seen.set('ok', (seen.get('ok') ?? 0) + 1);
    } catch (err) {
      if (!(err instanceof SvError) || err.code !== 'SV_ERR_AGENT_BAD_ANSWER') {
        t.fail(`input ${input.toString('hex')} threw ${String(err)}`);
        break;
      }
      seen.set(err.code, (seen.get(err.code) ?? 0) + 1);
    }
  }
  t.ok((seen.get('SV_ERR_AGENT_BAD_ANSWER') ?? 0) > ITERATIONS / 4, 'most mutations are refused');
  t.pass(`outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
  t.end();
});
