/**
 * Bounded, seeded fuzz of the VHD reader: real images (qemu's ext2 VHD, Windows 10's dynamic VHD, one of our
 * differencing children) mutated a few hundred times, half of them with checksums repaired so the mutation
 * reaches the deeper structures. Each must either read (extents and reads succeed) or throw a catalogued
 * SvError; anything else (TypeError, RangeError, hang) fails.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { tempDir } from '../helpers/env.js';
import { fixVhdChecksums, fixture, isCatalogued, rng } from './vhd-fixture-helpers.js';

const ITERATIONS = 120; // per image (3 images)

async function exercise(path: string, rand: () => number): Promise<void> {
  const image = await openDisk(path);
  try {
    const size = image.info.virtualSize;
    const extents = await image.extents();
    let covered = 0;
    for (const e of extents) covered += e.length;
    if (covered !== size) throw new Error(`extents cover ${covered} of ${size}`);
    const span = Math.min(size, 8 << 20);
    if (span > 0) await image.read(0, span);
    for (let k = 0; k < 4 && size > 0; k++) {
      const at = Math.floor(rand() * size);
      await image.read(at, Math.min(size - at, 1 + Math.floor(rand() * (3 << 20))));
    }
  } finally {
    await image.close();
  }
}

function mutate(orig: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(orig);
  const hot = [
    [0, 4096],
    [b.length - 512, b.length],
  ];
  const n = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) {
    let at: number;
    const r = rand();
    if (r < 0.6) {
      const [s, e] = hot[Math.floor(rand() * hot.length)]!;
      at = s! + Math.floor(rand() * (e! - s!));
    } else at = Math.floor(rand() * b.length);
    const mode = rand();
    if (mode < 0.5) b[at] = Math.floor(rand() * 256);
    else if (mode < 0.75) b[at]! ^= 1 << Math.floor(rand() * 8);
    else if (at + 4 <= b.length) b.writeUInt32BE([0, 0xffffffff, 0x7fffffff, 1, 0x80000000][Math.floor(rand() * 5)]!, at);
  }
  if (rand() < 0.5) fixVhdChecksums(b);
  return b;
}

t.test('mutated VHDs read or fail with catalogued errors', async (t) => {
  const dir = tempDir(t);
  const parent = join(dir, 'parent.vhd');
  const size = 4 << 20;
  const src = (fill: number, every: number): BlockSource => ({
    virtualSize: size,
    blockSize: 64 << 10,
    async *blocks() {
      for (let i = 0; i < size / (64 << 10); i += every) yield { index: i, data: Buffer.alloc(64 << 10, fill + i) };
    },
  });
  await writeDisk('vhd', src(1, 2), parent, { blockSize: 512 << 10 });
  await writeDisk('vhd', src(100, 3), join(dir, 'child.vhd'), { variant: 'differencing', parentPath: parent, blockSize: 512 << 10 });
  const images: Array<[string, Buffer]> = [
    ['qemu-ext2', readFileSync(fixture(dir, 'qemu-ext2.vhd.gz'))],
    ['win10-dynamic', readFileSync(fixture(dir, 'win10-dynamic.vhd.gz'))],
    ['child', readFileSync(join(dir, 'child.vhd'))],
  ];
  let ok = 0;
  let refused = 0;
  for (const [name, orig] of images) {
    const rand = rng(0x5eed + name.length);
    for (let i = 0; i < ITERATIONS; i++) {
      const path = join(dir, `${name}-fuzz.vhd`);
      writeFileSync(path, mutate(orig, rand));
      try {
        await exercise(path, rand);
        ok++;
      } catch (err) {
        if (!isCatalogued(err)) {
          t.fail(`${name} iteration ${i}: not a catalogued error: ${(err as Error)?.stack ?? String(err)}`);
          writeFileSync(join(dir, `${name}-crash-${i}.vhd`), readFileSync(path));
        } else refused++;
      }
    }
  }
  t.pass(`${ok} mutated images read, ${refused} refused with catalogued errors`);
  t.ok(ok > 0 && refused > 0, 'both outcomes seen');
});
