/**
 * The view.range answer codec: a round trip against what the worker task (storeBackupRange) returns for a
 * real file, with and without the previous point's digests (changed, unchanged, zeroed and new blocks), and
 * the exact bytes it puts on the wire (only changed blocks: header + payload each).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { prng, textLike } from '../../bench/data.js';
import { decodeRangeAnswer, encodeRangeAnswer, RECORD } from '../../src/agent/methods/range-codec.js';
import { closePool } from '../../src/pool/index.js';
import type { RangeResult } from '../../src/sources/types.js';
import { workerRange } from './range-helpers.js';

const BS = 64 * 1024;

t.teardown(() => closePool());

function same(t: Test, got: RangeResult, want: RangeResult, what: string): void {
  t.same(Buffer.from(got.digests), Buffer.from(want.digests), `${what}: digests`);
  t.same([...got.packed], [...want.packed], `${what}: packed blocks`);
  t.same([...got.flags], [...want.flags], `${what}: flags`);
  const payloads = (r: RangeResult): string[] => [...r.packed].map((_, j) => Buffer.from(r.payload.subarray(r.offsets[j]!, r.offsets[j + 1]!)).toString('hex'));
  t.same(payloads(got), payloads(want), `${what}: payloads`);
}

t.test('round trip against the worker task, with and without old digests', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sv-range-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const count = 40;
  const length = count * BS - 1000; // a short last block
  const rand = prng(7);
  const v1 = Buffer.alloc(length);
  for (let i = 0; i < count; i++) {
    const kind = i % 4;
    const start = i * BS;
    const end = Math.min(length, start + BS);
    if (kind === 0) continue; // zero
    if (kind === 1) textLike(end - start, i).copy(v1, start);
    else for (let k = start; k < end; k++) v1[k] = Math.floor(rand() * 256);
  }
  const f1 = join(dir, 'v1.img');
  await writeFile(f1, v1);
  const first = await workerRange(f1, 0, length, BS, null);
  const count1 = Math.ceil(length / BS);
  const enc1 = encodeRangeAnswer(first, null, count1);
  same(t, decodeRangeAnswer(enc1, { count: count1, blockSize: BS, length }, null), first, 'no old digests');
  const dataBlocks = [...first.packed].length;
  t.equal(enc1.length, dataBlocks * RECORD.size + first.payload.length, 'wire: a header and the payload per non-zero block, nothing for zero blocks');

  // v2: block 1 zeroed, block 2 rewritten, block 4 (was zero) written, the rest unchanged.
  const v2 = Buffer.from(v1);
  v2.fill(0, 1 * BS, 2 * BS);
  textLike(BS, 99).copy(v2, 2 * BS);
  textLike(BS, 100).copy(v2, 4 * BS);
  const f2 = join(dir, 'v2.img');
  await writeFile(f2, v2);
  const old = new Uint8Array(first.digests);
  const second = await workerRange(f2, 0, length, BS, old);
  const enc2 = encodeRangeAnswer(second, old, count1);
  const back = decodeRangeAnswer(enc2, { count: count1, blockSize: BS, length }, old);
  same(t, back, second, 'with old digests');
  t.same([...second.packed], [2, 4], 'the worker packed the rewritten and the new block');
  t.equal(enc2.length, 3 * RECORD.size + second.payload.length, 'wire: two changed blocks with payload + one zero record');
  t.equal(enc2.readUInt32LE(0), 1, 'the zeroed block travels as a record');
  t.equal(enc2[36], 0, '... with the ZERO flag');
  t.equal(enc2.readUInt32LE(37), 0, '... and no payload');

  const unchanged = await workerRange(f2, 0, length, BS, new Uint8Array(second.digests));
  t.equal(encodeRangeAnswer(unchanged, new Uint8Array(second.digests), count1).length, 0, 'nothing changed: an empty answer');
});

t.test('hostile answers are refused with a coded error', async (t) => {
  const shape = { count: 4, blockSize: 4096, length: 4 * 4096 };
  const rec = (index: number, flags: number, length: number, digest = Buffer.alloc(32, 1)): Buffer =>
    Buffer.concat([RECORD.encode({ index, digest, flags, length }), Buffer.alloc(length, 7)]);
  const cases: Array<[string, Buffer]> = [
    ['index past the range', rec(4, 1, 4096)],
    ['indices not increasing', Buffer.concat([rec(2, 1, 4096), rec(1, 1, 4096)])],
    ['duplicate index', Buffer.concat([rec(2, 1, 4096), rec(2, 1, 4096)])],
    ['raw block of the wrong size', rec(0, 1, 100)],
    ['unknown flag', rec(0, 9, 10)],
    ['zero record with payload', rec(0, 0, 5, Buffer.alloc(32))],
    ['zero record with a digest', rec(0, 0, 0)],
    ['data block with the zero digest', rec(0, 1, 4096, Buffer.alloc(32))],
    ['zstd payload above the bound', rec(0, 2, 9000)],
    ['header cut short', rec(0, 1, 4096).subarray(0, 20)],
    ['payload cut short', rec(0, 1, 4096).subarray(0, 2000)],
  ];
  for (const [what, payload] of cases) {
    t.throws(() => decodeRangeAnswer(payload, shape, null), { code: 'SV_ERR_AGENT_BAD_ANSWER' }, what);
  }
  t.throws(() => decodeRangeAnswer(Buffer.alloc(0), { count: 5, blockSize: 4096, length: 4 * 4096 }, null), { code: 'SV_ERR_AGENT_BAD_ANSWER' }, 'count that does not match the range');
  t.throws(() => decodeRangeAnswer(Buffer.alloc(0), shape, new Uint8Array(64)), { code: 'SV_ERR_AGENT_BAD_ANSWER' }, 'old digests of the wrong size');
});
