/**
 * VHDX round trips with qemu as the peer:
 *  - images qemu-img creates (block sizes 1..256 MiB, log sizes, fixed/dynamic, block_state_zero on/off) and
 *    qemu-io writes (partial blocks, across block boundaries, the last block, zero writes) read byte-identical
 *    to `qemu-img convert -O raw`, and every non-zero byte lies in a 'data' extent;
 *  - what our writer makes of them (several block sizes, fixed and dynamic) passes `qemu-img check` and
 *    `qemu-img compare` against the raw content, and reads back identically through our reader.
 * qemu 7.2 refuses VHDX with 4096-byte logical sectors, so that variant is checked by our reader only (against
 * the raw content qemu produced).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { writeDisk } from '../../src/formats/write.js';
import type { DiskImage } from '../../src/formats/types.js';
import type { VhdxWriteOptions } from '../../src/formats/vhdx/writer.js';
import { tempDir } from '../helpers/env.js';
import { imageSource, qemuImg, qemuIo } from './vhdx-helpers.js';

const MiB = 1 << 20;
const SIZE = 40 * MiB + 64 * 1024; // not a multiple of any block size: the last block is partial

const VARIANTS: { name: string; opts: string; blockSize: number }[] = [
  { name: 'dynamic 1M', opts: 'block_size=1M', blockSize: 1 * MiB },
  { name: 'dynamic 2M log 4M', opts: 'block_size=2M,log_size=4M', blockSize: 2 * MiB },
  { name: 'dynamic 8M zero off', opts: 'block_size=8M,block_state_zero=off', blockSize: 8 * MiB },
  { name: 'dynamic 32M', opts: 'block_size=32M', blockSize: 32 * MiB },
  { name: 'dynamic 256M log 2M', opts: 'block_size=256M,log_size=2M', blockSize: 256 * MiB },
  { name: 'fixed 1M', opts: 'subformat=fixed,block_size=1M', blockSize: 1 * MiB },
  { name: 'fixed 4M zero off', opts: 'subformat=fixed,block_size=4M,block_state_zero=off', blockSize: 4 * MiB },
];

const WRITES = [
  'write -P 0x11 0 512',
  'write -P 0x22 1048064 1024', // across the 1 MiB boundary
  'write -P 0x33 5246976 3145728', // 5 MiB + 4 KiB, 3 MiB
  'write -z 6291456 65536', // zeros inside written data
  'write -P 0x44 33554432 4096', // start of the second 32 MiB block
  `write -P 0x55 ${SIZE - 4096} 4096`, // the last sector(s)
];

async function assertExtentsCoverData(t: Test, img: DiskImage, raw: Buffer, what: string): Promise<void> {
  const ext = await img.extents();
  let pos = 0;
  let bad = -1;
  for (const e of ext) {
    if (e.offset !== pos) { bad = pos; break; }
    if (e.kind !== 'data' && raw.subarray(e.offset, e.offset + e.length).some((b) => b !== 0)) { bad = e.offset; break; }
    pos += e.length;
  }
  t.equal(bad, -1, `${what}: extents are contiguous and non-data extents read as zero`);
  t.equal(pos, raw.length, `${what}: extents cover the disk`);
}

t.test('qemu-made VHDX variants read identical to qemu-img convert', async (t) => {
  const dir = tempDir(t);
  for (const v of VARIANTS) {
    const img = join(dir, `${v.name.replace(/ /g, '-')}.vhdx`);
    const raw = join(dir, `${v.name.replace(/ /g, '-')}.raw`);
    qemuImg(['create', '-q', '-f', 'vhdx', '-o', v.opts, img, String(SIZE)]);
    qemuIo(img, WRITES);
    qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', img, raw]);
    const expected = await readFile(raw);
    const disk = await openDisk(img);
    try {
      t.equal(disk.info.virtualSize, SIZE, `${v.name}: size`);
      t.equal(disk.info.blockSize, v.blockSize, `${v.name}: block size`);
      const got = await disk.read(0, SIZE);
      t.ok(got.equals(expected), `${v.name}: whole-disk read equals qemu's raw`);
      // Unaligned reads crossing blocks.
      for (const [o, n] of [[1048000, 2000], [SIZE - 5000, 5000], [3 * MiB + 17, 9 * MiB]] as const) {
        t.ok((await disk.read(o, n)).equals(expected.subarray(o, o + n)), `${v.name}: read ${o}+${n}`);
      }
      await assertExtentsCoverData(t, disk, expected, v.name);
    } finally {
      await disk.close();
    }
  }
});

t.test('our VHDX writer: qemu-img check and compare, read back identically', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.vhdx');
  const raw = join(dir, 'src.raw');
  qemuImg(['create', '-q', '-f', 'vhdx', '-o', 'block_size=2M', src, String(SIZE)]);
  qemuIo(src, WRITES);
  qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', src, raw]);
  const expected = await readFile(raw);
  const source = await openDisk(src);
  t.teardown(() => source.close());
  const cases: { name: string; opts: Record<string, unknown>; srcBlock: number }[] = [
    { name: 'dynamic default (32M)', opts: {}, srcBlock: 4 * MiB },
    { name: 'dynamic 1M', opts: { blockSize: 1 * MiB }, srcBlock: 3 * MiB },
    { name: 'dynamic 256M', opts: { blockSize: 256 * MiB }, srcBlock: 1 * MiB },
    { name: 'fixed 4M', opts: { variant: 'fixed', blockSize: 4 * MiB }, srcBlock: 2 * MiB },
    { name: 'dynamic 2M physical 512', opts: { blockSize: 2 * MiB, physicalSectorSize: 512 }, srcBlock: 64 * 1024 },
  ];
  for (const c of cases) {
    const out = join(dir, `out-${c.name.replace(/[ ()]/g, '_')}.vhdx`);
    await writeDisk('vhdx', imageSource(source, c.srcBlock), out, c.opts);
    t.match(qemuImg(['check', '-f', 'vhdx', out]), /No errors were found/, `${c.name}: qemu-img check`);
    t.match(qemuImg(['compare', '-f', 'vhdx', '-F', 'raw', out, raw]), /Images are identical/, `${c.name}: qemu-img compare`);
    const back = await openDisk(out);
    try {
      t.ok((await back.read(0, SIZE)).equals(expected), `${c.name}: our reader reads it back`);
      if (c.opts.variant === 'fixed') t.equal(back.info.variant, 'fixed');
      else if (((c.opts.blockSize as number | undefined) ?? 32 * MiB) <= 2 * MiB) {
        const ext = await back.extents();
        const dataBytes = ext.filter((e) => e.kind === 'data').reduce((n, e) => n + e.length, 0);
        t.ok(dataBytes < SIZE, `${c.name}: zero blocks stay unallocated (${dataBytes} data bytes)`);
      }
    } finally {
      await back.close();
    }
  }
});

t.test('4096-byte logical sectors: written and read back by us (qemu 7.2 refuses them)', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.vhdx');
  const raw = join(dir, 'src.raw');
  qemuImg(['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', src, String(SIZE)]);
  qemuIo(src, WRITES);
  qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', src, raw]);
  const expected = await readFile(raw);
  const source = await openDisk(src);
  t.teardown(() => source.close());
  for (const blockSize of [1 * MiB, 8 * MiB]) {
    const out = join(dir, `out4k-${blockSize}.vhdx`);
    const opts: VhdxWriteOptions = { logicalSectorSize: 4096, blockSize };
    await writeDisk('vhdx', imageSource(source, 1 * MiB), out, opts);
    const back = await openDisk(out);
    try {
      t.equal(back.info.logicalSectorSize, 4096);
      t.equal(back.info.extra.chunkRatio, (2 ** 23 * 4096) / blockSize);
      t.ok((await back.read(0, SIZE)).equals(expected), `4K sectors, ${blockSize} blocks: content`);
    } finally {
      await back.close();
    }
  }
});
