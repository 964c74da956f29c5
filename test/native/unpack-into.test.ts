/**
 * unpackBlockInto: decodes a block straight into a caller's buffer at an offset, digest checked; the same
 * answers as unpackBlock (round trips of zstd, raw and zero blocks), bytes outside the range untouched,
 * coded errors for a bad range, an overlap, a wrong digest; and a bounded fuzz of mutated payloads (the
 * original bytes or a catalogued SV_ERR_NATIVE_* code, never other bytes, never a write outside the range).
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { specOf } from '../../src/errors/catalogue.js';
import { BLOCK_FLAG, blockAt, packBlocks, unpackBlock, unpackBlockInto, ZERO_DIGEST } from '../../src/native/index.js';
import { prng } from '../../bench/data.js';


const text = Buffer.from('volume chunk alpha beta gamma\n'.repeat(400)).subarray(0, 8192);
const data = Buffer.concat([text, randomBytes(8192), Buffer.alloc(8192), text.subarray(0, 5000)]);
const batch = packBlocks(data, 8192, 1);

t.test('round trips into a target at an offset, like unpackBlock', async (t) => {
  const flags = new Set<number>();
  for (let i = 0; i < batch.count; i++) {
    const b = blockAt(batch, i);
    flags.add(b.flag);
    const target = Buffer.alloc(b.size + 300, 0xaa);
    t.equal(unpackBlockInto(b.payload, b.flag, b.digest, target, 100, b.size), b.size, `block ${i} returns its size`);
    t.ok(target.subarray(100, 100 + b.size).equals(data.subarray(i * 8192, i * 8192 + b.size)), `block ${i} (flag ${b.flag}) bytes`);
    t.ok(target.subarray(100, 100 + b.size).equals(unpackBlock(b.payload, b.flag, b.digest, b.size)), `block ${i} same as unpackBlock`);
    t.ok(target.subarray(0, 100).every((x) => x === 0xaa) && target.subarray(100 + b.size).every((x) => x === 0xaa), `block ${i}: nothing written outside`);
  }
  t.same([...flags].sort(), [BLOCK_FLAG.ZERO, BLOCK_FLAG.RAW, BLOCK_FLAG.ZSTD], 'zero, raw and zstd blocks covered');
  const zero = Buffer.alloc(64, 0xff);
  unpackBlockInto(Buffer.alloc(0), BLOCK_FLAG.ZERO, ZERO_DIGEST, zero, 8, 16);
  t.ok(zero.subarray(8, 24).every((x) => x === 0) && zero[7] === 0xff && zero[24] === 0xff, 'a zero block writes zeros');
  const view = new Uint8Array(new ArrayBuffer(9000), 500, 8300);
  const b0 = blockAt(batch, 0);
  unpackBlockInto(b0.payload, b0.flag, b0.digest, view, 10, b0.size);
  t.ok(Buffer.from(view.buffer, 510, b0.size).equals(text), 'a Uint8Array view at a byte offset is a target too');
});

t.test('refuses bad ranges, overlaps and wrong digests with coded errors', async (t) => {
  const b = blockAt(batch, 0); // zstd
  t.equal(b.flag, BLOCK_FLAG.ZSTD);
  t.throws(() => unpackBlockInto(b.payload, b.flag, b.digest, Buffer.alloc(8191), 0, 8192), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'target too small');
  t.throws(() => unpackBlockInto(b.payload, b.flag, b.digest, Buffer.alloc(9000), 1000, 8192), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'range past the end');
  t.throws(() => unpackBlockInto(b.payload, b.flag, b.digest, Buffer.alloc(9000), -1, 8192), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'negative offset');
  t.throws(() => unpackBlockInto(b.payload, b.flag, b.digest.subarray(0, 31), Buffer.alloc(9000), 0, 8192), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'short digest');
  const shared = Buffer.alloc(20000);
  b.payload.copy(shared, 0);
  t.throws(() => unpackBlockInto(shared.subarray(0, b.payload.length), b.flag, b.digest, shared, b.payload.length >> 1, 8192), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'overlap refused');
  t.equal(unpackBlockInto(shared.subarray(0, b.payload.length), b.flag, b.digest, shared, 10000, 8192), 8192, 'same memory, no overlap: fine');
  const wrong = Buffer.from(b.digest);
  wrong[0] ^= 1;
  t.throws(() => unpackBlockInto(b.payload, b.flag, wrong, Buffer.alloc(8192), 0, 8192), { code: 'SV_ERR_NATIVE_DIGEST_MISMATCH' });
  t.throws(() => unpackBlockInto(b.payload, b.flag, b.digest, Buffer.alloc(9000), 0, 8191), { code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }, 'size smaller than the frame');
  t.throws(() => unpackBlockInto(b.payload, b.flag, b.digest, Buffer.alloc(9000), 0, 8193), { code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }, 'size larger than the frame');
  t.throws(() => unpackBlockInto(b.payload, 7, b.digest, Buffer.alloc(9000), 0, 8192), { code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }, 'unknown flag');
  const r = blockAt(batch, 1); // raw
  t.equal(r.flag, BLOCK_FLAG.RAW);
  t.throws(() => unpackBlockInto(r.payload, r.flag, r.digest, Buffer.alloc(9000), 0, 8000), { code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }, 'raw size mismatch');
  t.throws(() => unpackBlockInto(Buffer.alloc(1), BLOCK_FLAG.ZERO, ZERO_DIGEST, Buffer.alloc(10), 0, 4), { code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }, 'zero block with a payload');
  t.throws(() => unpackBlockInto(Buffer.alloc(0), BLOCK_FLAG.RAW, b.digest, 'nope' as unknown as Buffer, 0, 0), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'target not a buffer');
});

t.test('fuzz: mutated payloads give the original bytes or a catalogued error, never a write outside', async (t) => {
  const rand = prng(0xb10c);
  let decoded = 0;
  let rejected = 0;
  for (let iter = 0; iter < 2000; iter++) {
    const b = blockAt(batch, Math.floor(rand() * batch.count));
    const original = data.subarray(b.index * 8192, b.index * 8192 + b.size);
    let payload = Buffer.from(b.payload);
    let flag: number = b.flag;
    let size = b.size;
    const kind = Math.floor(rand() * 5);
    if (kind === 0 && payload.length) payload[Math.floor(rand() * payload.length)] ^= 1 << Math.floor(rand() * 8);
    else if (kind === 1) payload = payload.subarray(0, Math.floor(rand() * (payload.length + 1)));
    else if (kind === 2) payload = Buffer.concat([payload, Buffer.from([Math.floor(rand() * 256)])]);
    else if (kind === 3) flag = Math.floor(rand() * 4);
    else size = Math.max(0, size + Math.floor(rand() * 9) - 4);
    const pad = Math.floor(rand() * 64);
    const target = Buffer.alloc(pad + size + 64, 0x5c);
    try {
      unpackBlockInto(payload, flag, b.digest, target, pad, size);
      const expected = flag === BLOCK_FLAG.ZERO && b.flag === BLOCK_FLAG.ZERO ? Buffer.alloc(size) : original;
      if (!target.subarray(pad, pad + size).equals(expected)) t.fail(`iteration ${iter} (kind ${kind}): other bytes than the original`);
      decoded++;
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'none';
      if (!/^SV_ERR_NATIVE_/.test(code) || !specOf(code)) t.fail(`iteration ${iter} (kind ${kind}): unexpected error ${code}: ${(err as Error).message}`);
      rejected++;
    }
    if (!target.subarray(0, pad).every((x) => x === 0x5c) || !target.subarray(pad + size).every((x) => x === 0x5c)) {
      t.fail(`iteration ${iter} (kind ${kind}): wrote outside [${pad}, ${pad + size})`);
    }
  }
  t.ok(rejected > 500 && decoded > 100, `${rejected} rejected, ${decoded} decoded`);
});
