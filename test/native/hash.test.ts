/** The addon's BLAKE3: official test vectors, b3sum on random files, packBlocks digests = hash of each block. */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BLOCK_FLAG, blockAt, hash, packBlocks, ZERO_DIGEST } from '../../src/native/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { BLAKE3_VECTORS, vectorInput } from './vectors.js';

t.test('hash matches the official BLAKE3 test vectors', async (t) => {
  for (const v of BLAKE3_VECTORS) {
    t.equal(hash(vectorInput(v.length)).toString('hex'), v.hash, `input_len ${v.length}`);
  }
});

t.test('packBlocks digests match the vectors (one block per input; the 1-byte input is a zero block)', async (t) => {
  for (const v of BLAKE3_VECTORS.filter((x) => x.length > 0)) {
    const batch = packBlocks(vectorInput(v.length), v.length, 1);
    t.equal(batch.count, 1);
    const block = blockAt(batch, 0);
    if (v.length === 1) {
      t.equal(block.flag, BLOCK_FLAG.ZERO, 'byte 0 alone is all zero');
      t.same(block.digest, ZERO_DIGEST);
    } else {
      t.equal(block.digest.toString('hex'), v.hash, `input_len ${v.length}`);
    }
  }
});

t.test('hash agrees with b3sum on random files of several sizes', async (t) => {
  const b3sum = requireTool('b3sum');
  const dir = tempDir(t);
  const sizes = [1, 63, 64, 1000, 65536, 65537, 1 << 20, (1 << 20) + 12345];
  const files = sizes.map((size, i) => {
    const data = randomBytes(size);
    const file = join(dir, `r${i}.bin`);
    writeFileSync(file, data);
    return { file, data };
  });
  const out = run(b3sum, files.map((f) => f.file));
  const expected = new Map(out.trim().split('\n').map((line) => {
    const [digest, file] = line.split(/\s+/);
    return [file!, digest!];
  }));
  for (const f of files) t.equal(hash(f.data).toString('hex'), expected.get(f.file), `${f.data.length} bytes`);
});

t.test('packBlocks digest of every block equals hash() of that block, incl. a short last block', async (t) => {
  const data = randomBytes(5 * 4096 + 100);
  const batch = packBlocks(data, 4096, 3);
  t.equal(batch.count, 6);
  for (let i = 0; i < batch.count; i++) {
    const block = blockAt(batch, i);
    t.same(block.digest, hash(data.subarray(i * 4096, i * 4096 + block.size)), `block ${i}`);
  }
  t.equal(blockAt(batch, 5).size, 100, 'the last block is short');
});

t.test('hash accepts Uint8Array and views at an offset', async (t) => {
  const data = vectorInput(3000);
  const view = new Uint8Array(data.buffer, data.byteOffset + 1, 1024);
  t.same(hash(view), hash(Buffer.from(data.subarray(1, 1025))));
});
