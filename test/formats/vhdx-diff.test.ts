/**
 * Differencing VHDX chains built with our writer (qemu-img can neither create VHDX children nor open them),
 * checked against the MS-VHDX merge rule: a sector comes from the nearest image in the chain whose block is
 * FULLY_PRESENT, or PARTIALLY_PRESENT with the sector's bitmap bit set (ZERO: zeros); NOT_PRESENT falls through
 * to the parent. The expected disk is a byte model that applies each layer's sector writes in chain order.
 * Also: the on-disk states and sector bitmap bits match what was written, and bad chains (wrong parent identity,
 * missing parent, cycle) give coded errors.
 */
import { copyFile, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { buildMetadataRegion, buildParentLocator } from '../../src/formats/vhdx/build.js';
import type { VhdxImage } from '../../src/formats/vhdx/image.js';
import {
  PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_ZERO,
} from '../../src/formats/vhdx/layout.js';
import type { VhdxBlockSource, VhdxSourceBlock } from '../../src/formats/vhdx/writer.js';
import { tempDir } from '../helpers/env.js';
import { fixture } from './vhdx-helpers.js';

const MiB = 1 << 20;
const SIZE = 20 * MiB + 3 * 512;

/** A deterministic byte pattern (xorshift) for write `seed`. */
function pattern(seed: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

interface Write { offset: number; length: number; seed: number | 'zero' }

/** A differencing source holding `writes` (sector aligned), in source blocks of `blockSize`, with ranges. */
function writesSource(writes: readonly Write[], blockSize: number): VhdxBlockSource {
  const blocks = new Map<number, { data: Buffer; ranges: { offset: number; length: number }[] }>();
  for (const w of writes) {
    const bytes = w.seed === 'zero' ? Buffer.alloc(w.length) : pattern(w.seed, w.length);
    let pos = w.offset;
    while (pos < w.offset + w.length) {
      const i = Math.floor(pos / blockSize);
      const start = i * blockSize;
      const n = Math.min(w.offset + w.length, start + blockSize) - pos;
      let blk = blocks.get(i);
      if (!blk) blocks.set(i, blk = { data: Buffer.alloc(Math.min(blockSize, SIZE - start)), ranges: [] });
      bytes.copy(blk.data, pos - start, pos - w.offset, pos - w.offset + n);
      blk.ranges.push({ offset: pos - start, length: n });
      pos += n;
    }
  }
  return {
    virtualSize: SIZE,
    blockSize,
    async *blocks(): AsyncIterable<VhdxSourceBlock> {
      for (const i of [...blocks.keys()].sort((a, b) => a - b)) yield { index: i, ...blocks.get(i)! };
    },
  };
}

function applyToModel(model: Buffer, writes: readonly Write[]): void {
  for (const w of writes) (w.seed === 'zero' ? Buffer.alloc(w.length) : pattern(w.seed, w.length)).copy(model, w.offset);
}

const BASE: Write[] = [
  { offset: 0, length: 6 * MiB, seed: 1 },
  { offset: 9 * MiB, length: 3 * MiB + 512, seed: 2 },
  { offset: SIZE - 8192, length: 8192, seed: 3 },
];
const LAYERS: { blockSize: number; writes: Write[] }[] = [
  { // child 1: 2 MiB blocks; partial sectors, a full block, a full block of zeros, the tail
    blockSize: 2 * MiB,
    writes: [
      { offset: 512, length: 1024, seed: 10 },
      { offset: 4096 * 3, length: 4096, seed: 11 },
      { offset: 4 * MiB, length: 2 * MiB, seed: 12 },
      { offset: 10 * MiB, length: 2 * MiB, seed: 'zero' },
      { offset: 14 * MiB + 512, length: 512, seed: 13 },
      { offset: SIZE - 512, length: 512, seed: 14 },
    ],
  },
  { // child 2: 1 MiB blocks; overwrites some of child 1, zeroes a sector range
    blockSize: 1 * MiB,
    writes: [
      { offset: 1024, length: 512, seed: 20 },
      { offset: 4 * MiB + 4096, length: 8192, seed: 'zero' },
      { offset: 7 * MiB, length: 1 * MiB, seed: 21 },
      { offset: 14 * MiB, length: 4096, seed: 22 },
    ],
  },
  { // child 3: 4 MiB blocks, one sector in a block nobody wrote, and a long run across blocks
    blockSize: 4 * MiB,
    writes: [
      { offset: 17 * MiB + 1536, length: 512, seed: 30 },
      { offset: 2 * MiB - 512, length: 6 * MiB + 1024, seed: 31 },
    ],
  },
];

async function buildChain(dir: string): Promise<{ paths: string[]; models: Buffer[] }> {
  const model = Buffer.alloc(SIZE);
  const base = join(dir, 'base.vhdx');
  const baseSrc: BlockSource = writesSource(BASE, 1 * MiB);
  await writeDisk('vhdx', baseSrc, base, { blockSize: 4 * MiB });
  applyToModel(model, BASE);
  const paths = [base];
  const models = [Buffer.from(model)];
  for (let i = 0; i < LAYERS.length; i++) {
    const layer = LAYERS[i]!;
    const path = join(dir, `child${i + 1}.avhdx`);
    await writeDisk('vhdx', writesSource(layer.writes, 3 * MiB), path, { variant: 'differencing', parentPath: paths[paths.length - 1]!, blockSize: layer.blockSize });
    applyToModel(model, layer.writes);
    paths.push(path);
    models.push(Buffer.from(model));
  }
  return { paths, models };
}

t.test('chain of depth 4 reads per the merge rule, layer by layer', async (t) => {
  const dir = tempDir(t);
  const { paths, models } = await buildChain(dir);
  for (let i = 0; i < paths.length; i++) {
    const img = await openDisk(paths[i]!);
    try {
      t.equal(img.info.variant, i === 0 ? 'dynamic' : 'differencing');
      let depth = 0;
      for (let p = img.info.parent; p; p = p.parent) depth++;
      t.equal(depth, i, `${paths[i]}: chain depth`);
      const all = await img.read(0, SIZE);
      t.ok(all.equals(models[i]!), `${paths[i]}: whole disk equals the model`);
      // Block-by-block (1 MiB) and odd-sized reads.
      let mismatch = -1;
      for (let o = 0; o < SIZE && mismatch < 0; o += MiB) {
        const n = Math.min(MiB, SIZE - o);
        if (!(await img.read(o, n)).equals(models[i]!.subarray(o, o + n))) mismatch = o;
      }
      t.equal(mismatch, -1, `${paths[i]}: 1 MiB reads equal the model`);
      const o = 4 * MiB - 700;
      t.ok((await img.read(o, 5000)).equals(models[i]!.subarray(o, o + 5000)), 'unaligned read across blocks');
      const ext = await img.extents();
      t.equal(ext.reduce((n, e) => n + e.length, 0), SIZE, 'extents cover the disk');
      const leak = ext.find((e) => e.kind !== 'data' && models[i]!.subarray(e.offset, e.offset + e.length).some((b) => b !== 0));
      t.notOk(leak, 'every non-zero byte lies in a data extent');
    } finally {
      await img.close();
    }
  }
});

t.test('on-disk states and sector bitmaps match the writes', async (t) => {
  const dir = tempDir(t);
  const { paths } = await buildChain(dir);
  const img = (await openDisk(paths[1]!)) as VhdxImage;
  t.teardown(() => img.close());
  const bat = img.layer.bat;
  t.equal(bat.chunkRatio, 2048, '2^23 * 512 / 2 MiB');
  t.equal(bat.payloadState(0), PAYLOAD_BLOCK_PARTIALLY_PRESENT, 'block 0: a few sectors');
  t.equal(bat.payloadState(1), PAYLOAD_BLOCK_NOT_PRESENT, 'block 1: untouched');
  t.equal(bat.payloadState(2), PAYLOAD_BLOCK_FULLY_PRESENT, 'block 2: written whole');
  t.equal(bat.payloadState(5), PAYLOAD_BLOCK_ZERO, 'block 5: written whole with zeros');
  t.equal(bat.payloadState(7), PAYLOAD_BLOCK_PARTIALLY_PRESENT, 'block 7: one sector');
  t.equal(bat.payloadState(10), PAYLOAD_BLOCK_PARTIALLY_PRESENT, 'last (partial) block: one sector');
  const bitmap = await img.layer.view.read(bat.bitmapOffset(0), MiB, 'sector bitmap');
  const bit = (sector: number): number => (bitmap[sector >>> 3]! >>> (sector & 7)) & 1;
  const set: number[] = [];
  for (let s = 0; s < 4096 * 2; s++) if (bit(s)) set.push(s);
  t.same(set.filter((s) => s < 4096), [1, 2, 24, 25, 26, 27, 28, 29, 30, 31], 'block 0 bits: sectors 1-2 and 24-31');
  t.equal(bit(7 * 4096 + 1), 1, 'block 7 sector 1');
  t.equal(bit(7 * 4096), 0);
});

t.test('a parent with another DataWriteGuid is refused', async (t) => {
  const dir = tempDir(t);
  const { paths } = await buildChain(dir);
  const other = join(dir, 'other.vhdx');
  await writeDisk('vhdx', writesSource(BASE, MiB), other, { blockSize: 4 * MiB });
  await copyFile(other, paths[0]!);
  await t.rejects(openDisk(paths[1]!), { code: 'SV_ERR_FORMAT_PARENT_MISMATCH', message: /DataWriteGuid/ });
  await t.rejects(openDisk(paths[3]!), { code: 'SV_ERR_FORMAT_PARENT_MISMATCH' }, 'also from the top of the chain');
});

t.test('a missing parent and a cycle give coded errors', async (t) => {
  const dir = tempDir(t);
  const { paths } = await buildChain(dir);
  await copyFile(paths[3]!, paths[0]!); // base now holds child 3, whose parent is child 2 → ... → child 1 → base
  await t.rejects(openDisk(paths[1]!), { code: 'SV_ERR_FORMAT_PARENT_CYCLE' });
  await rm(paths[0]!);
  await t.rejects(openDisk(paths[2]!), { code: 'SV_ERR_FORMAT_PARENT_NOT_FOUND', message: /base\.vhdx/ });
});

t.test('parent found through a Windows absolute path by file name; parent_linkage2 accepted', async (t) => {
  const dir = tempDir(t);
  const { paths, models } = await buildChain(dir);
  const base = await openDisk(paths[0]!);
  const baseId = base.info.id!;
  await base.close();
  const img = (await openDisk(paths[1]!)) as VhdxImage;
  const p = img.layer.params;
  await img.close();
  const meta = buildMetadataRegion({
    blockSize: p.blockSize, leaveBlocksAllocated: false, virtualSize: p.virtualSize, logicalSectorSize: p.logicalSectorSize,
    physicalSectorSize: p.physicalSectorSize, page83: p.page83,
    parentLocator: buildParentLocator([
      ['parent_linkage', '{00000000-1111-2222-3333-444444444444}'],
      ['parent_linkage2', `{${baseId.toUpperCase()}}`],
      ['relative_path', '..\\elsewhere\\base.vhdx'],
      ['absolute_win32_path', 'C:\\ProgramData\\Microsoft\\Windows\\Hyper-V\\base.vhdx'],
      ['volume_path', '\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\Hyper-V\\base.vhdx'],
    ]),
  });
  const fh = await open(paths[1]!, 'r+');
  await fh.write(meta, 0, meta.length, 2 * MiB); // our writer's metadata region
  await fh.close();
  const again = await openDisk(paths[1]!);
  t.teardown(() => again.close());
  t.equal(again.info.parent?.path, paths[0], 'parent found in the child\'s folder');
  t.ok((await again.read(0, SIZE)).equals(models[1]!));
});

t.test('a child of a Hyper-V-made VHDX (Windows 10 dynamic fixture)', async (t) => {
  const dir = tempDir(t);
  const parent = await fixture(dir, 'win10-dynamic.vhdx');
  const base = await openDisk(parent);
  const model = await base.read(0, base.info.virtualSize);
  const size = base.info.virtualSize;
  await base.close();
  const writes = [
    { offset: 512, length: 512, fill: 0x5a },
    { offset: 3 * MiB, length: 2 * MiB, fill: 0x6b },
    { offset: size - 4096, length: 4096, fill: 0x7c },
  ];
  const child = join(dir, 'win10-checkpoint.avhdx');
  const source: VhdxBlockSource = {
    virtualSize: size,
    blockSize: size,
    async *blocks() {
      const data = Buffer.alloc(size);
      for (const w of writes) data.fill(w.fill, w.offset, w.offset + w.length);
      yield { index: 0, data, ranges: writes.map((w) => ({ offset: w.offset, length: w.length })) };
    },
  };
  await writeDisk('vhdx', source, child, { variant: 'differencing', parentPath: parent });
  for (const w of writes) model.fill(w.fill, w.offset, w.offset + w.length);
  const img = await openDisk(child);
  t.teardown(() => img.close());
  t.equal(img.info.parent?.path, parent);
  t.ok((await img.read(0, size)).equals(model), 'parent data with the child\'s sectors over it');
});

t.test('4096-byte logical sectors: a chain with partial blocks', async (t) => {
  const dir = tempDir(t);
  const size = 6 * MiB;
  const opts = (o: Record<string, unknown>): Parameters<typeof writeDisk>[3] => ({ logicalSectorSize: 4096, ...o }) as Parameters<typeof writeDisk>[3];
  const base = join(dir, 'base4k.vhdx');
  const model = Buffer.alloc(size);
  await writeDisk('vhdx', {
    virtualSize: size, blockSize: MiB,
    async *blocks() { for (let i = 0; i < 6; i++) yield { index: i, data: pattern(100 + i, MiB) }; },
  }, base, opts({ blockSize: MiB }));
  for (let i = 0; i < 6; i++) pattern(100 + i, MiB).copy(model, i * MiB);
  const child = join(dir, 'child4k.avhdx');
  const writes = [{ offset: 3 * MiB - 4096, length: 12288 }, { offset: 4096, length: 8192 }]; // out of order on purpose
  await writeDisk('vhdx', {
    virtualSize: size, blockSize: size,
    async *blocks() {
      const data = Buffer.alloc(size, 0x77);
      yield { index: 0, data, ranges: writes };
    },
  } as VhdxBlockSource, child, opts({ variant: 'differencing', parentPath: base, blockSize: 2 * MiB }));
  for (const w of writes) model.fill(0x77, w.offset, w.offset + w.length);
  const img = (await openDisk(child)) as VhdxImage;
  t.teardown(() => img.close());
  t.equal(img.info.logicalSectorSize, 4096);
  t.equal(img.layer.bat.chunkRatio, 16384, '2^23 * 4096 / 2 MiB');
  t.same([0, 1, 2].map((b) => img.layer.bat.payloadState(b)), [PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT]);
  t.ok((await img.read(0, size)).equals(model), 'merge with 4 KiB sectors');
  const bad = join(dir, 'child512.avhdx');
  await t.rejects(writeDisk('vhdx', { virtualSize: size, blockSize: MiB, async *blocks() {} }, bad, { variant: 'differencing', parentPath: base }),
    { code: 'SV_ERR_FORMAT_BAD_OPTION', message: /logical sector size/ }, 'a 512-sector child of a 4K parent is refused');
});
