/**
 * Raw images: the reader (any file, byte for byte; a fully sparse file is one 'zero' extent) and the sparse
 * writer (holes where zero; qemu-img agrees), and re-chunking of block sources of other block sizes.
 */
import { readFileSync, statSync, writeFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { rechunk } from '../../src/formats/source.js';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { hashImage, sha256 } from './vhd-fixture-helpers.js';

function source(size: number, blockSize: number, fill: (i: number) => number | null): BlockSource {
  return {
    virtualSize: size,
    blockSize,
    async *blocks() {
      for (let i = 0; i * blockSize < size; i++) {
        const f = fill(i);
        yield { index: i, data: f === null ? null : Buffer.alloc(Math.min(blockSize, size - i * blockSize), f) };
      }
    },
  };
}

t.test('raw reader reads any file byte for byte', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'odd.bin');
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 123);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  writeFileSync(path, bytes);
  const image = await openDisk(path);
  t.teardown(() => image.close());
  t.equal(image.info.format, 'raw');
  t.equal(image.info.virtualSize, bytes.length);
  t.same(await image.extents(), [{ offset: 0, length: bytes.length, kind: 'data' }]);
  t.equal(await hashImage(image, 1 << 20), sha256(bytes));
  t.ok((await image.read(1000, 5000)).equals(bytes.subarray(1000, 6000)));
  await t.rejects(image.read(bytes.length - 1, 2), { code: 'SV_ERR_FORMAT_READ_RANGE' });

  const sparse = join(dir, 'sparse.img');
  writeFileSync(sparse, '');
  truncateSync(sparse, 1 << 30);
  const s = await openDisk(sparse);
  t.same(await s.extents(), [{ offset: 0, length: 1 << 30, kind: 'zero' }], 'a file with no blocks is all zero');
  await s.close();
});

t.test('sparse raw writer: holes where zero, qemu-img agrees', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t);
  const size = 10 * (1 << 20) + 4096;
  const out = join(dir, 'out.raw');
  // Blocks: 0 data, 1 null, 2 explicit zeros, 3 data, ..., last short block data.
  const fill = (i: number) => (i % 3 === 1 ? null : i % 3 === 2 ? 0 : i + 1);
  await writeDisk('raw', source(size, 1 << 20, fill), out);
  const bytes = readFileSync(out);
  t.equal(bytes.length, size);
  const expected = Buffer.alloc(size);
  for (let i = 0; i * (1 << 20) < size; i++) {
    const f = fill(i);
    if (f) expected.fill(f, i * (1 << 20), Math.min(size, (i + 1) << 20));
  }
  t.ok(bytes.equals(expected), 'content');
  t.ok(statSync(out).blocks * 512 < size - (4 << 20), `zero blocks are holes (allocated ${statSync(out).blocks * 512} of ${size})`);
  const map = JSON.parse(run(qemuImg, ['map', '-f', 'raw', '--output=json', out])) as Array<{ data: boolean; length: number }>;
  t.ok(map.some((m) => !m.data), 'qemu-img map sees holes');
  await t.rejects(writeDisk('raw', source(size, 1 << 20, fill), out), { code: 'SV_ERR_FORMAT_OUTPUT_EXISTS' });
  await writeDisk('raw', source(size, 1 << 20, () => 9), out, { overwrite: true });
  t.equal(readFileSync(out)[size - 1], 9, 'overwrite: true replaces it');
});

t.test('rechunk splits and joins blocks, null where nothing was given', async (t) => {
  const size = 5 * 65536 + 512;
  const src = source(size, 65536, (i) => (i === 1 || i === 5 ? i : null));
  const big: Array<[number, number | null]> = [];
  for await (const b of rechunk(src, 131072, 'x')) big.push([b.index, b.data ? b.data.length : null]);
  t.same(big, [[0, 131072], [2, 66048]], 'joined: only target blocks with data');
  const small: number[] = [];
  for await (const b of rechunk(src, 16384, 'x')) if (b.data) small.push(b.index);
  t.same(small, [4, 5, 6, 7, 20], 'split');
  const bad: BlockSource = { virtualSize: size, blockSize: 65536, async *blocks() { yield { index: 1, data: Buffer.alloc(1) }; } };
  await t.rejects((async () => { for await (const _ of rechunk(bad, 65536, 'x')) void _; })(), { code: 'SV_ERR_FORMAT_BAD_SOURCE' });
  const backwards: BlockSource = { virtualSize: size, blockSize: 65536, async *blocks() { yield { index: 2, data: null }; yield { index: 1, data: null }; } };
  await t.rejects((async () => { for await (const _ of rechunk(backwards, 4096, 'x')) void _; })(), { code: 'SV_ERR_FORMAT_BAD_SOURCE' });
});
