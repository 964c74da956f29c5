/**
 * Test/benchmark disk generator: a raw disk of 4 MiB regions, 40% zero (left as holes), 30% compressible
 * (bytes with 4 bits of entropy: zstd roughly halves them), 30% random; and "days" that overwrite a fraction
 * of the 64 KiB blocks (scattered, random data) in place, returning the change list [[offset, length], ...].
 * Deterministic for a seed. `node build/bench/gen-disk.js OUT SIZE_MIB [--day PCT SEED]`.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { prng } from './data.js';

const REGION = 4 * 1024 * 1024;

export { prng } from './data.js';

export type RegionKind = 'zero' | 'compressible' | 'random';

export function regionKind(rand: () => number): RegionKind {
  const x = rand();
  return x < 0.4 ? 'zero' : x < 0.7 ? 'compressible' : 'random';
}

function fillRegion(buf: Buffer, kind: RegionKind): void {
  randomFillSync(buf);
  if (kind === 'compressible') for (let i = 0; i < buf.length; i++) buf[i]! &= 0x0f;
}

/** Write a fresh raw disk of `size` bytes (a multiple of 4 MiB). Returns the count of each region kind. */
export function generateDisk(path: string, size: number, seed = 1): Record<RegionKind, number> {
  const rand = prng(seed);
  const fd = openSync(path, 'w');
  const counts: Record<RegionKind, number> = { zero: 0, compressible: 0, random: 0 };
  try {
    ftruncateSync(fd, size);
    const buf = Buffer.allocUnsafe(REGION);
    for (let off = 0; off < size; off += REGION) {
      const kind = regionKind(rand);
      counts[kind]++;
      if (kind === 'zero') continue;
      const len = Math.min(REGION, size - off);
      fillRegion(buf.subarray(0, len), kind);
      writeSync(fd, buf, 0, len, off);
    }
  } finally {
    closeSync(fd);
  }
  return counts;
}

/**
 * A "day" of changes: overwrite `percent`% of the disk's `blockSize` blocks, chosen at random (scattered),
 * with random data. Returns the change list (sorted).
 */
export function changeDay(path: string, size: number, percent: number, seed: number, blockSize = 64 * 1024): Array<[number, number]> {
  const rand = prng(seed);
  const blocks = Math.floor(size / blockSize);
  const n = Math.max(1, Math.round((blocks * percent) / 100));
  const chosen = new Set<number>();
  while (chosen.size < n) chosen.add(Math.floor(rand() * blocks));
  const list = [...chosen].sort((a, b) => a - b);
  const fd = openSync(path, 'r+');
  const buf = Buffer.allocUnsafe(blockSize);
  try {
    for (const b of list) {
      randomFillSync(buf);
      writeSync(fd, buf, 0, blockSize, b * blockSize);
    }
  } finally {
    closeSync(fd);
  }
  return list.map((b) => [b * blockSize, blockSize]);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/build\//, '/build/'))) {
  const [out, mib, flag, pct, seed] = process.argv.slice(2);
  if (!out || !mib) {
    process.stderr.write('usage: node build/bench/gen-disk.js OUT SIZE_MIB [--day PERCENT SEED]\n');
    process.exit(2);
  }
  const size = Number(mib) * 1024 * 1024;
  if (flag === '--day') process.stdout.write(`${JSON.stringify(changeDay(out, size, Number(pct), Number(seed)))}\n`);
  else process.stdout.write(`${JSON.stringify(generateDisk(out, size))}\n`);
}
