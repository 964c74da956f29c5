/** packBlocks layout and block kinds: zero blocks, raw fallback, zstd frames, short last block, bad arguments. */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { BLOCK_FLAG, blockAt, DIGEST_LENGTH, isZero, packBlocks, unpackBlock, ZERO_DIGEST } from '../../src/native/index.js';

function textBlock(size: number, seed: number): Buffer {
  const words = ['backup', 'volume', 'chunk', 'digest', 'restore', 'snapshot', 'worker', 'queue'];
  let s = '';
  for (let i = 0; s.length < size; i++) s += `${i + seed} ${words[(i * 7 + seed) % words.length]} ${words[(i * 3) % words.length]} bytes=${(i * 7919) % 100000}\n`;
  return Buffer.from(s.slice(0, size), 'latin1');
}

t.test('layout: offsets, digests and flags share one ArrayBuffer; offsets are cumulative', async (t) => {
  const data = Buffer.concat([textBlock(8192, 1), Buffer.alloc(8192), randomBytes(8192), textBlock(1000, 2)]);
  const b = packBlocks(data, 8192, 1);
  t.equal(b.count, 4);
  t.equal(b.blockSize, 8192);
  t.equal(b.inputLength, data.length);
  t.equal(b.offsets.length, 5);
  t.equal(b.digests.length, 4 * DIGEST_LENGTH);
  t.equal(b.flags.length, 4);
  t.equal(b.offsets.buffer, b.digests.buffer, 'offsets and digests share one ArrayBuffer');
  t.equal(b.flags.buffer, b.offsets.buffer, 'flags too');
  t.equal(b.offsets[0], 0);
  t.equal(b.offsets[4], b.payload.length, 'last offset is the payload length');
  t.same([...b.flags], [BLOCK_FLAG.ZSTD, BLOCK_FLAG.ZERO, BLOCK_FLAG.RAW, BLOCK_FLAG.ZSTD]);
  for (let i = 0; i < b.count; i++) {
    const block = blockAt(b, i);
    t.ok((unpackBlock(block.payload, block.flag, block.digest, block.size)).equals(data.subarray(i * 8192, i * 8192 + block.size)), `block ${i} round trip`);
  }
});

t.test('zero blocks: flag ZERO, ZERO_DIGEST, no payload; unpack gives zeros', async (t) => {
  const b = packBlocks(Buffer.alloc(3 * 65536 + 17), 65536, 1);
  t.equal(b.count, 4);
  t.same([...b.flags], [0, 0, 0, 0]);
  t.equal(b.payload.length, 0);
  t.same([...b.offsets], [0, 0, 0, 0, 0]);
  for (let i = 0; i < 4; i++) t.same(blockAt(b, i).digest, ZERO_DIGEST);
  const out = unpackBlock(Buffer.alloc(0), BLOCK_FLAG.ZERO, ZERO_DIGEST, 17);
  t.ok(out.equals(Buffer.alloc(17)));
  t.ok(isZero(Buffer.alloc(1 << 20)));
});

t.test('a single non-zero byte anywhere makes a block non-zero', async (t) => {
  for (const pos of [0, 1, 255, 256, 4095, 65535]) {
    const data = Buffer.alloc(65536);
    data[pos] = 1;
    t.notOk(isZero(data), `byte ${pos}`);
    const b = packBlocks(data, 65536, 1);
    t.not(b.flags[0], BLOCK_FLAG.ZERO, `packBlocks byte ${pos}`);
    const block = blockAt(b, 0);
    t.ok((unpackBlock(block.payload, block.flag, block.digest, block.size)).equals(data));
  }
});

t.test('incompressible data stays raw (payload = the bytes)', async (t) => {
  const data = randomBytes(3 * 65536);
  const b = packBlocks(data, 65536, 1);
  t.same([...b.flags], [BLOCK_FLAG.RAW, BLOCK_FLAG.RAW, BLOCK_FLAG.RAW]);
  t.ok(b.payload.equals(data), 'raw payloads concatenated are the input');
  const block = blockAt(b, 1);
  const out = unpackBlock(block.payload, block.flag, block.digest, block.size);
  t.ok(out.equals(data.subarray(65536, 131072)));
});

t.test('compressible data becomes ZSTD and is smaller', async (t) => {
  const data = textBlock(1 << 20, 5);
  const b = packBlocks(data, 1 << 18, 1);
  t.same([...b.flags], [2, 2, 2, 2]);
  t.ok(b.payload.length < data.length / 2, `payload ${b.payload.length} < half of ${data.length}`);
});

t.test('short last block and empty input', async (t) => {
  const data = textBlock(10000, 3);
  const b = packBlocks(data, 4096, 1);
  t.equal(b.count, 3);
  const last = blockAt(b, 2);
  t.equal(last.size, 10000 - 8192);
  t.ok((unpackBlock(last.payload, last.flag, last.digest, last.size)).equals(data.subarray(8192)));
  const empty = packBlocks(Buffer.alloc(0), 4096, 1);
  t.equal(empty.count, 0);
  t.same([...empty.offsets], [0]);
  t.equal(empty.payload.length, 0);
});

t.test('levels across the range produce frames that decode', async (t) => {
  const data = textBlock(50000, 9);
  for (const level of [-5, 1, 3, 9, 19]) {
    const b = packBlocks(data, 50000, level);
    const block = blockAt(b, 0);
    t.ok((unpackBlock(block.payload, block.flag, block.digest, block.size)).equals(data), `level ${level}`);
  }
});

t.test('bad arguments are SV_ERR_NATIVE_BAD_ARGUMENT', async (t) => {
  const data = Buffer.alloc(100, 1);
  const bad: Array<[string, () => unknown]> = [
    ['blockSize 0', () => packBlocks(data, 0, 1)],
    ['blockSize fractional', () => packBlocks(data, 1.5, 1)],
    ['blockSize negative', () => packBlocks(data, -4, 1)],
    ['level too high', () => packBlocks(data, 64, 23)],
    ['level not a number', () => packBlocks(data, 64, '1' as unknown as number)],
    ['buffer is a string', () => packBlocks('abc' as unknown as Buffer, 64, 1)],
    ['digest of 31 bytes', () => unpackBlock(data, 1, Buffer.alloc(31), 100)],
    ['size negative', () => unpackBlock(data, 1, Buffer.alloc(32), -1)],
  ];
  for (const [what, fn] of bad) {
    t.throws(fn, { name: 'SvError', code: 'SV_ERR_NATIVE_BAD_ARGUMENT' }, what);
  }
});

t.test('blockAt outside the batch is SV_ERR_CORE_INVALID_ARGUMENT', async (t) => {
  const b = packBlocks(Buffer.alloc(10, 1), 4, 1);
  t.equal(b.count, 3);
  for (const index of [-1, 3, 1.5]) t.throws(() => blockAt(b, index), { code: 'SV_ERR_CORE_INVALID_ARGUMENT' }, `index ${index}`);
});
