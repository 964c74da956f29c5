/**
 * Bounded fuzz of unpackBlock: mutated payloads, digests, flags and sizes either decode to exactly the
 * original bytes (a mutation zstd tolerates and BLAKE3 confirms) or throw a catalogued SV_ERR_NATIVE_* code.
 * Never a crash, never other bytes. Seeded, so a failure names a reproducible case.
 */
import t from 'tap';
import { BLOCK_FLAG, blockAt, packBlocks, unpackBlock } from '../../src/native/index.js';
import { specOf } from '../../src/errors/catalogue.js';
import { prng } from '../../bench/data.js';


const ALLOWED = new Set(['SV_ERR_NATIVE_CORRUPT_PAYLOAD', 'SV_ERR_NATIVE_DIGEST_MISMATCH', 'SV_ERR_NATIVE_BAD_ARGUMENT']);

function sample(size: number, rand: () => number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'chunk', 'volume', '\n', '0x1f', '=', ' '];
  let s = '';
  while (s.length < size) s += words[Math.floor(rand() * words.length)]!;
  return Buffer.from(s.slice(0, size), 'latin1');
}

t.test('mutated payloads: original bytes or a catalogued error', async (t) => {
  const rand = prng(0x5eed);
  const original = Buffer.concat([sample(8192, rand), Buffer.alloc(4096), sample(4000, rand)]);
  const batch = packBlocks(original, 4096, 1);
  let decoded = 0;
  let rejected = 0;
  const codes = new Map<string, number>();
  for (let iter = 0; iter < 3000; iter++) {
    const block = blockAt(batch, Math.floor(rand() * batch.count));
    const originalBytes = original.subarray(block.index * 4096, block.index * 4096 + block.size);
    let payload = Buffer.from(block.payload);
    let flag: number = block.flag;
    let size = block.size;
    const digest = Buffer.from(block.digest);
    const kind = Math.floor(rand() * 6);
    if (kind === 0 && payload.length) payload[Math.floor(rand() * payload.length)] ^= 1 << Math.floor(rand() * 8);
    else if (kind === 1) payload = payload.subarray(0, Math.floor(rand() * (payload.length + 1)));
    else if (kind === 2) payload = Buffer.concat([payload, Buffer.from([Math.floor(rand() * 256)])]);
    else if (kind === 3) for (let k = 0; k < 8 && payload.length; k++) payload[Math.floor(rand() * payload.length)] = Math.floor(rand() * 256);
    else if (kind === 4) flag = Math.floor(rand() * 4);
    else size = Math.max(0, size + Math.floor(rand() * 9) - 4);
    try {
      const out = unpackBlock(payload, flag, digest, size);
      // A zero block carries no bytes to check against: it decodes to `size` zeros (the size is the index's).
      const expected = flag === BLOCK_FLAG.ZERO && block.flag === BLOCK_FLAG.ZERO ? Buffer.alloc(size) : originalBytes;
      if (!out.equals(expected)) t.fail(`iteration ${iter} (kind ${kind}): decoded to other bytes than the original`);
      decoded++;
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'none';
      if (!ALLOWED.has(code) || !specOf(code)) t.fail(`iteration ${iter} (kind ${kind}): unexpected error ${code}: ${(err as Error).message}`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      rejected++;
    }
  }
  t.ok(rejected > 1000, `${rejected} mutations rejected, ${decoded} decoded; codes ${JSON.stringify([...codes])}`);
});

t.test('random bytes as a zstd frame never decode', async (t) => {
  const rand = prng(42);
  const digest = Buffer.alloc(32, 7);
  for (let iter = 0; iter < 500; iter++) {
    const junk = Buffer.from(Array.from({ length: 4 + Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
    if (iter % 2) junk.writeUInt32LE(0xfd2fb528, 0); // a valid magic number, so the frame header parser is exercised
    t.throws(() => unpackBlock(junk, BLOCK_FLAG.ZSTD, digest, 1 + Math.floor(rand() * 5000)), { code: /^SV_ERR_NATIVE_(CORRUPT_PAYLOAD|DIGEST_MISMATCH)$/ });
  }
});
