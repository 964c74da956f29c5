/**
 * md5Parts (native/src/md5.rs: several parts per SIMD pass) against OpenSSL's MD5 (node:crypto): every part of
 * every length around the block and padding edges (55/56/63/64/65 bytes...), part sizes that are and are not a
 * multiple of the 64-byte block, more parts than the 8 lanes (several rounds), a short last part (lanes of
 * different lengths), views at odd offsets, and seeded random cases; bad arguments are coded errors.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { md5Parts } from '../../src/native/index.js';
import { prng } from '../../bench/gen-disk.js';

const md5 = (b: Uint8Array): Buffer => createHash('md5').update(b).digest();

function expected(data: Uint8Array, part: number): Buffer {
  const out: Buffer[] = [];
  if (data.length === 0) return md5(data);
  for (let at = 0; at < data.length; at += part) out.push(md5(data.subarray(at, Math.min(data.length, at + part))));
  return Buffer.concat(out);
}

function bytes(n: number, seed: number): Buffer {
  const rand = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

t.test('md5Parts equals OpenSSL MD5 part by part', async (t) => {
  const lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4095, 4096, 65_536 + 17, 300_001];
  const parts = [1, 3, 55, 56, 63, 64, 65, 127, 128, 1000, 4096, 65_536, 1 << 20];
  let cases = 0;
  let wrong = 0;
  for (const len of lengths) {
    const data = bytes(len + 3, len).subarray(3); // a view that does not start at its buffer's start
    for (const part of parts) {
      if (len / part > 2000) continue;
      cases++;
      if (!md5Parts(data, part).equals(expected(data, part))) {
        wrong++;
        t.fail(`length ${len}, part size ${part}`);
      }
    }
  }
  t.equal(wrong, 0, `${cases} length/part-size cases`);
  const big = bytes((8 << 20) * 2 + 12_345, 7); // 17 parts of 1 MiB and a short one: three rounds of lanes
  t.ok(md5Parts(big, 1 << 20).equals(expected(big, 1 << 20)), '17 MiB in 1 MiB parts');
  t.ok(md5Parts(big, 5 << 20).equals(expected(big, 5 << 20)), 'and in 5 MiB parts (S3 multipart minimum)');
  const rand = prng(99);
  for (let i = 0; i < 200; i++) {
    const len = Math.floor(rand() * 20_000);
    const part = 1 + Math.floor(rand() * 3000);
    const data = bytes(len, 1000 + i);
    if (!md5Parts(data, part).equals(expected(data, part))) t.fail(`random case ${i}: length ${len}, part size ${part}`);
  }
  t.pass('200 random cases');
});

t.test('md5Parts refuses bad arguments with coded errors', async (t) => {
  t.throws(() => md5Parts(Buffer.alloc(10), 0), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'part size 0');
  t.throws(() => md5Parts('text' as unknown as Uint8Array, 4), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, 'not bytes');
});
