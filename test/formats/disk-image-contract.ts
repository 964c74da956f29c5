/**
 * The shared DiskImage suite (contract in src/formats/types.ts): run over every implementation with the bytes
 * the image must hold. Checks: size, extents cover [0, size) in order without gaps or overlaps and adjacent
 * extents of one kind are merged, zero/unallocated extents read as zeros, seeded random reads (small, straddling
 * blocks, large, up to the end) equal the expected bytes, reads into a caller's buffer, and out-of-range reads
 * throw SV_ERR_FORMAT_READ_RANGE.
 */
import type { Test } from 'tap';
import type { DiskImage } from '../../src/formats/types.js';
import { hasCode } from '../../src/errors/index.js';

/** A small seeded PRNG (xorshift32): the same reads every run. */
export function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

export async function diskImageContract(t: Test, image: DiskImage, expected: Buffer, opts: { seed?: number; reads?: number } = {}): Promise<void> {
  const size = expected.length;
  t.equal(image.info.virtualSize, size, 'virtualSize is the disk size');

  const extents = await image.extents();
  let at = 0;
  let prevKind: string | undefined;
  let contiguous = true;
  let merged = true;
  for (const e of extents) {
    if (e.offset !== at || e.length <= 0) contiguous = false;
    if (e.kind === prevKind) merged = false;
    prevKind = e.kind;
    at = e.offset + e.length;
  }
  t.ok(contiguous && at === size, 'extents cover [0, size) in order, without gaps or overlaps');
  t.ok(merged, 'adjacent extents of the same kind are merged');
  let holesZero = true;
  for (const e of extents) {
    if (e.kind === 'data') continue;
    for (let o = e.offset; o < e.offset + e.length; o += 1 << 20) {
      const n = Math.min(1 << 20, e.offset + e.length - o);
      if (!expected.subarray(o, o + n).equals(Buffer.alloc(n))) holesZero = false;
    }
  }
  t.ok(holesZero, 'zero and unallocated extents are zero in the expected bytes');

  const whole = await image.read(0, size);
  t.ok(whole.equals(expected), 'the whole disk reads back byte for byte');

  const rnd = seeded(opts.seed ?? 12);
  let bad = 0;
  const reads = opts.reads ?? 200;
  for (let i = 0; i < reads; i++) {
    const big = i % 10 === 0;
    const length = Math.min(size, Math.floor(rnd() * (big ? 3 << 20 : 150_000)));
    const offset = Math.floor(rnd() * (size - length + 1));
    const got = await image.read(offset, length);
    if (got.length !== length || !got.equals(expected.subarray(offset, offset + length))) bad++;
  }
  t.equal(bad, 0, `${reads} seeded reads (small, straddling blocks, over 1 MiB) equal the expected bytes`);

  const tail = Math.min(size, 5000);
  t.ok((await image.read(size - tail, tail)).equals(expected.subarray(size - tail)), 'a read ending at the last byte');
  t.equal((await image.read(size, 0)).length, 0, 'an empty read at the end');

  const target = Buffer.alloc(200_000, 0xee);
  const into = await image.read(1234, 100_000, target);
  t.ok(into.subarray(0, 100_000).equals(expected.subarray(1234, 101_234)) && target.subarray(0, 100_000).equals(expected.subarray(1234, 101_234)), 'a read into a caller buffer fills it');

  for (const [offset, length] of [[-1, 10], [size - 10, 11], [size + 1, 0], [0.5, 10]] as const) {
    try {
      await image.read(offset, length);
      t.fail(`read(${offset}, ${length}) should fail`);
    } catch (err) {
      t.ok(hasCode(err, 'SV_ERR_FORMAT_READ_RANGE'), `read(${offset}, ${length}) throws SV_ERR_FORMAT_READ_RANGE`);
    }
  }
}
