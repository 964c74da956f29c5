/**
 * THE shared contract suite of disk sources (src/sources/types.ts): every kind runs it over the same bytes.
 *
 * `sourceContract(t, factory)` writes a raw image with seeded random blocks, repeated blocks, zero blocks and
 * sparse holes, and a short last block (the size is not a multiple of the block size); `factory` turns that
 * file into a reference of its kind (a file ref; an NBD export of it through qemu-nbd/nbdkit; ...). Checked:
 * - info.virtualSize is the file's size; `read` returns the file's bytes (incl. the short tail) and refuses
 *   ranges outside the disk with SV_ERR_FORMAT_READ_RANGE;
 * - `extents` cover [0, size) in order without gaps, and every non-zero byte lies in a 'data' extent;
 * - `backupRange` gives, for every block, the digest of its bytes (zero digest for a zero block) and a
 *   payload that decodes back to the bytes, for exactly the non-zero blocks whose digest differs from
 *   `oldDigests`; and it is byte for byte what the `file` kind returns for the same range (deterministic);
 * - bad ranges (misaligned, past the end, empty, negative, wrong digest count) throw SV_ERR_SOURCE_BAD_RANGE;
 * - `bytesTransferred`: 0 for kinds that read in place, else it grows by at least the bytes read;
 * - `close` is idempotent and every call after it throws SV_ERR_SOURCE_CLOSED.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { hasCode, type SvErrorCode } from '../../src/errors/index.js';
import { hash, isZero, unpackBlock } from '../../src/native/index.js';
import { openDiskSource } from '../../src/sources/registry.js';
import type { DiskSource, DiskSourceRef, RangeRequest, RangeResult } from '../../src/sources/types.js';
import { COMPRESSION_LEVEL } from '../../storage/layout.js';
import { rng } from '../formats/vhd-fixture-helpers.js';
import { tempDir } from '../helpers/env.js';
import { asyncErrorCode } from '../helpers/codes.js';

export const BS = 64 * 1024;
/** 70 blocks and a 12 KiB tail. */
export const SIZE = 70 * BS + 12 * 1024;

export interface ContractOptions {
  /** 'none': bytesTransferred stays 0 (read in place); 'payload': it grows by exactly the bytes read; 'some': it grows. */
  readonly transfer: 'none' | 'payload' | 'some';
}

/** Turns the test image (a raw file) into a reference of the kind under test; may start servers (t.teardown them). */
export type SourceFactory = (t: Test, rawPath: string, dir: string) => Promise<DiskSourceRef>;

/** The test image: seeded random blocks, a repeated block, zero blocks and a hole, a short tail. */
export function writeTestImage(path: string, seed = 1010): Buffer {
  const rand = rng(seed);
  const buf = Buffer.alloc(SIZE);
  const fill = (from: number, to: number): void => {
    for (let i = from; i < to; i++) buf[i] = Math.floor(rand() * 256);
  };
  for (let b = 0; b < 70; b++) {
    const at = b * BS;
    if (b >= 20 && b < 30) continue; // zero run
    if (b % 7 === 3) continue; // scattered zero blocks
    if (b % 11 === 5) {
      buf.copy(buf, at, 0, BS); // a repeat of block 0
      continue;
    }
    if (b % 13 === 6) {
      fill(at + 100, at + 200); // mostly zero, a few bytes of data
      continue;
    }
    fill(at, at + BS);
  }
  fill(70 * BS, SIZE); // the tail
  writeFileSync(path, buf);
  return buf;
}


const ZERO_DIGEST = Buffer.alloc(32);

/** Checks one backupRange result against the bytes it covers. */
function checkResult(t: Test, what: string, r: RangeResult, bytes: Buffer, old: Buffer | null): void {
  const count = Math.ceil(bytes.length / BS);
  t.equal(r.digests.byteLength, count * 32, `${what}: one digest per block`);
  const expectPacked: number[] = [];
  let wrong = 0;
  for (let i = 0; i < count; i++) {
    const block = bytes.subarray(i * BS, Math.min(bytes.length, (i + 1) * BS));
    const want = isZero(block) ? ZERO_DIGEST : hash(block);
    if (!Buffer.from(r.digests.buffer, r.digests.byteOffset + i * 32, 32).equals(want)) wrong++;
    if (!isZero(block) && (!old || !old.subarray(i * 32, i * 32 + 32).equals(want))) expectPacked.push(i);
  }
  t.equal(wrong, 0, `${what}: every digest is the block's`);
  t.same([...r.packed], expectPacked, `${what}: exactly the changed non-zero blocks are packed`);
  t.equal(r.offsets.length, r.packed.length + 1, `${what}: payload offsets`);
  let bad = 0;
  r.packed.forEach((b, j) => {
    const block = bytes.subarray(b * BS, Math.min(bytes.length, (b + 1) * BS));
    const payload = r.payload.subarray(r.offsets[j]!, r.offsets[j + 1]!);
    const digest = Buffer.from(r.digests.buffer, r.digests.byteOffset + b * 32, 32);
    if (!unpackBlock(payload, r.flags[j]!, digest, block.length).equals(block)) bad++;
  });
  t.equal(bad, 0, `${what}: every payload decodes to its block`);
}

function same(a: RangeResult, b: RangeResult): boolean {
  const eq = (x: ArrayBufferView, y: ArrayBufferView): boolean =>
    Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  return eq(a.digests, b.digests) && eq(a.packed, b.packed) && eq(a.flags, b.flags) && eq(a.offsets, b.offsets) && eq(a.payload, b.payload);
}

const req = (offset: number, length: number, oldDigests: Uint8Array | null = null): RangeRequest => ({ offset, length, blockSize: BS, level: COMPRESSION_LEVEL, oldDigests });

/** Run the contract over the references `factory` makes. */
export function sourceContract(t: Test, name: string, factory: SourceFactory, opts: ContractOptions): void {
  t.test(`${name}: the disk source contract`, async (t) => {
    const dir = tempDir(t, 'sv-source-');
    const rawPath = join(dir, 'disk.raw');
    const bytes = writeTestImage(rawPath);
    const ref = await factory(t, rawPath, dir);
    const source: DiskSource = await openDiskSource(ref);
    const reference = await openDiskSource({ kind: 'file', path: rawPath, format: 'raw' });
    t.teardown(async () => {
      await source.close();
      await reference.close();
    });
    t.same(source.ref, ref, 'the source keeps its reference');
    t.equal(source.info.virtualSize, SIZE, 'virtual size');

    await t.test('read returns the bytes', async (t) => {
      for (const [o, l] of [[0, BS], [5 * BS + 17, 3 * BS], [SIZE - 12 * 1024, 12 * 1024], [0, SIZE]] as const) {
        t.ok((await source.read(o, l)).equals(bytes.subarray(o, o + l)), `[${o}, +${l})`);
      }
      const target = Buffer.alloc(2 * BS, 0xee);
      const got = await source.read(BS, BS, target);
      t.ok(got.subarray(0, BS).equals(bytes.subarray(BS, 2 * BS)), 'into a given buffer');
      t.equal(await asyncErrorCode(() => source.read(SIZE - 10, 20)), 'SV_ERR_FORMAT_READ_RANGE', 'a read past the end');
    });

    await t.test('extents cover the disk; data is inside data extents', async (t) => {
      const ext = await source.extents();
      let at = 0;
      let gaps = 0;
      for (const e of ext) {
        if (e.offset !== at || e.length <= 0) gaps++;
        at = e.offset + e.length;
      }
      t.equal(gaps, 0, 'in order, no gaps or overlaps');
      t.equal(at, SIZE, 'up to the end');
      let misplaced = 0;
      for (const e of ext) if (e.kind !== 'data' && !isZero(bytes.subarray(e.offset, e.offset + e.length))) misplaced++;
      t.equal(misplaced, 0, 'no non-zero byte outside a data extent');
    });

    await t.test('backupRange: digests and payloads of the bytes, the same as the file kind', async (t) => {
      const ranges: Array<[number, number]> = [[0, 16 * BS], [16 * BS, 16 * BS], [64 * BS, SIZE - 64 * BS], [69 * BS, SIZE - 69 * BS]];
      for (const [o, l] of ranges) {
        const before = source.bytesTransferred;
        const r = await source.backupRange(req(o, l));
        const delta = source.bytesTransferred - before;
        if (opts.transfer === 'none') t.equal(delta, 0, 'nothing crossed a boundary');
        else if (opts.transfer === 'payload') t.equal(delta, l, 'bytesTransferred grew by the bytes read');
        else t.ok(delta > 0, `bytesTransferred grew (${delta})`);
        checkResult(t, `[${o}, +${l})`, r, bytes.subarray(o, o + l), null);
        t.ok(same(r, await reference.backupRange(req(o, l))), `[${o}, +${l}) is byte for byte the file kind's result`);
      }
      // With the previous digests: unchanged blocks are not packed; changed ones (here: forged old digests) are.
      const full = await reference.backupRange(req(0, 16 * BS));
      const old = Buffer.from(full.digests.buffer, full.digests.byteOffset, full.digests.byteLength);
      const forged = Buffer.from(old);
      forged.fill(0x5a, 2 * 32, 3 * 32); // block 2 "changed"
      forged.fill(0x5a, 3 * 32, 4 * 32); // block 3 (zero) "changed": zero blocks are never packed
      const inc = await source.backupRange(req(0, 16 * BS, new Uint8Array(forged)));
      checkResult(t, 'incremental', inc, bytes.subarray(0, 16 * BS), forged);
      t.same([...inc.packed], [2], 'only the changed non-zero block is packed');
      const none = await source.backupRange(req(0, 16 * BS, new Uint8Array(old)));
      t.equal(none.packed.length, 0, 'nothing changed: nothing packed');
    });

    await t.test('backupSpans (when the kind has it): backupRange of each range, in one go', async (t) => {
      if (!source.backupSpans) return t.pass(`${name} has no backupSpans (callers use backupRange)`);
      const spans: Array<[number, number]> = [[0, BS], [3 * BS, 4 * BS], [69 * BS, SIZE - 69 * BS], [3 * BS, BS]];
      const got = await source.backupSpans(spans.map(([o, l]) => req(o, l)));
      for (const [i, [o, l]] of spans.entries()) t.ok(same(got[i]!, await reference.backupRange(req(o, l))), `[${o}, +${l}) is the file kind's result`);
      t.equal(await asyncErrorCode(() => source.backupSpans!([req(0, BS), req(100, BS)])), 'SV_ERR_SOURCE_BAD_RANGE', 'a bad range among them');
    });

    await t.test('bad ranges: SV_ERR_SOURCE_BAD_RANGE', async (t) => {
      const bad: Array<[string, RangeRequest]> = [
        ['misaligned offset', req(100, BS)],
        ['length not a block multiple (not at the end)', req(0, BS + 1)],
        ['past the end', req(69 * BS, 2 * BS)],
        ['starting past the end', req(80 * BS, BS)],
        ['empty', req(0, 0)],
        ['negative offset', req(-BS, BS)],
        ['fractional length', req(0, 1.5)],
        ['wrong digest count', req(0, 2 * BS, new Uint8Array(32))],
        ['block size not a power of two', { ...req(0, 3 * 10000), blockSize: 10000 }],
      ];
      for (const [what, r] of bad) t.equal(await asyncErrorCode(() => source.backupRange(r)), 'SV_ERR_SOURCE_BAD_RANGE', what);
    });

    // Last: closes the source (one connection at a time: qemu-nbd serves one client by default).
    await t.test('close is idempotent; calls after it throw', async (t) => {
      const s = source;
      await s.close();
      await s.close();
      const closed: SvErrorCode = 'SV_ERR_SOURCE_CLOSED';
      for (const [what, p] of [['read', () => s.read(0, BS)], ['extents', () => s.extents()], ['backupRange', () => s.backupRange(req(0, BS))]] as const) {
        const err = await (p as () => Promise<unknown>)().then(() => null, (e: unknown) => e);
        t.ok(hasCode(err, closed), `${what} after close: ${(err as { code?: string } | null)?.code ?? 'resolved'}`);
      }
    });
  });
}
