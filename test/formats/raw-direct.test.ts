/**
 * The raw writer's O_DIRECT path (src/formats/raw/direct.ts, writeRawFile): page-aligned blocks go straight to
 * the device on the VM disk (a folder under /var/tmp, not a tmpfs), misaligned memory is copied to an aligned
 * buffer, the unaligned tail goes buffered; on /dev/shm the kernel either takes O_DIRECT (tmpfs does since
 * Linux 6.6) or refuses it and everything is buffered; a refusal in the middle of the file (EINVAL from a write)
 * rewrites that batch buffered and carries on. Every output is checked by SHA-256 against the expected bytes
 * and with `qemu-img compare`, and must stay sparse where zero. Also alignmentGap/allocAligned (native).
 */
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { writeDisk } from '../../src/formats/write.js';
import { openDirect } from '../../src/formats/raw/direct.js';
import { writeRawFile } from '../../src/formats/raw/writer.js';
import type { BlockSource } from '../../src/formats/types.js';
import { alignmentGap, allocAligned } from '../../src/native/index.js';
import { prng } from '../../bench/data.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { sha256 } from './vhd-fixture-helpers.js';

const KiB = 1024;
const BLOCK = 64 * KiB;
const BLOCKS = 160; // 10 MiB
const SIZE = BLOCKS * BLOCK + 1000; // a short, unaligned tail block

/** Expected image and a source over it: aligned, misaligned, null, explicit-zero blocks and a short tail. */
function fixture(): { bytes: Buffer; source: () => BlockSource } {
  const bytes = Buffer.alloc(SIZE);
  const kind = (i: number): 'aligned' | 'misaligned' | 'null' | 'zeros' => {
    if (i >= 40 && i < 70) return 'null'; // a run of holes between direct batches
    if (i % 11 === 5) return 'zeros';
    if (i % 7 === 3) return 'misaligned';
    return 'aligned';
  };
  for (let i = 0; i <= BLOCKS; i++) {
    const k = i === BLOCKS ? 'aligned' : kind(i);
    if (k === 'aligned' || k === 'misaligned') randomFillSync(bytes, i * BLOCK, Math.min(BLOCK, SIZE - i * BLOCK));
  }
  const source = (): BlockSource => ({
    virtualSize: SIZE,
    blockSize: BLOCK,
    async *blocks() {
      for (let i = 0; i <= BLOCKS; i++) {
        const start = i * BLOCK;
        const len = Math.min(BLOCK, SIZE - start);
        const k = i === BLOCKS ? 'aligned' : kind(i);
        if (k === 'null') {
          yield { index: i, data: null };
          continue;
        }
        let data: Buffer;
        if (k === 'misaligned') data = Buffer.allocUnsafeSlow(len + 8192).subarray(4097, 4097 + len); // never page-aligned
        else if (k === 'zeros') data = Buffer.alloc(len);
        else data = allocAligned(len);
        bytes.copy(data, 0, start, start + len);
        yield { index: i, data };
      }
    },
  });
  return { bytes, source };
}

/** A fresh folder on the VM's disk (not the OS temp folder, which may be a tmpfs elsewhere). */
function diskDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join('/var/tmp', 'sv-test-direct-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Can this folder's file system open files with O_DIRECT? (probed with a real file) */
async function directWorks(dir: string): Promise<boolean> {
  const probe = join(dir, 'probe');
  writeFileSync(probe, '');
  const fh = await openDirect(probe);
  await fh?.close();
  rmSync(probe);
  return fh !== undefined;
}

function checkImage(t: Test, out: string, bytes: Buffer, dir: string, qemuImg: string): void {
  t.equal(statSync(out).size, SIZE, 'size');
  t.equal(sha256(readFileSync(out)), sha256(bytes), 'SHA-256 of the output is the expected image');
  const expected = join(dir, 'expected.raw');
  if (!existsSync(expected)) writeFileSync(expected, bytes);
  t.doesNotThrow(() => run(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', expected, out]), 'qemu-img compare: identical');
  t.ok(statSync(out).blocks * 512 < SIZE - 20 * BLOCK, `holes where zero (${statSync(out).blocks * 512} bytes allocated)`);
}

t.test('alignmentGap and allocAligned', async (t) => {
  for (const size of [1, 4096, 65536, 1 << 20]) {
    const b = allocAligned(size);
    t.equal(b.length, size);
    t.equal(alignmentGap(b, 4096), 0, `${size} bytes: page-aligned`);
    if (size === 1) continue;
    t.equal(alignmentGap(b.subarray(1), 4096), 4095, 'one byte in: 4095 to the next page');
    t.equal(alignmentGap(b.subarray(512), 512), 0);
  }
  t.equal(alignmentGap(Buffer.alloc(0), 4096), 0, 'empty view');
  t.throws(() => alignmentGap(Buffer.alloc(8), 3000), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' });
  t.throws(() => alignmentGap(Buffer.alloc(8), 0), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' });
  t.throws(() => alignmentGap('x' as unknown as Uint8Array, 4096), { code: 'SV_ERR_NATIVE_BAD_ARGUMENT' });
});

t.test('on the VM disk: aligned blocks through O_DIRECT, misaligned copied, tail buffered', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = diskDir(t);
  const { bytes, source } = fixture();
  const out = join(dir, 'out.raw');
  const stats = await writeRawFile(source(), out);
  checkImage(t, out, bytes, dir, qemuImg);
  if (await directWorks(dir)) {
    t.notOk(stats.directRefused, 'O_DIRECT accepted');
    t.ok(stats.directBytes > 100 * BLOCK, `${stats.directBytes} bytes written with O_DIRECT`);
    t.equal(stats.bufferedBytes, 1000, 'only the unaligned tail written buffered');
  } else {
    t.ok(stats.directRefused && stats.directBytes === 0, `${dir}: O_DIRECT refused here, all buffered`);
  }
  // writeDisk (temp + fsync + rename) takes the same path.
  const viaWriteDisk = join(dir, 'via-write-disk.raw');
  await writeDisk('raw', source(), viaWriteDisk);
  checkImage(t, viaWriteDisk, bytes, dir, qemuImg);
});

t.test('on /dev/shm: O_DIRECT taken or refused by the kernel, same bytes', async (t) => {
  const qemuImg = requireTool('qemu-img');
  t.ok(existsSync('/dev/shm'), '/dev/shm exists');
  const dir = tempDir(t, 'sv-test-direct-');
  const shm = mkdtempSync(join('/dev/shm', 'sv-test-direct-'));
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const { bytes, source } = fixture();
  const out = join(shm, 'out.raw');
  const stats = await writeRawFile(source(), out);
  const works = await directWorks(shm);
  t.equal(stats.directRefused, !works, `tmpfs ${works ? 'takes' : 'refuses'} O_DIRECT`);
  t.equal(stats.directBytes + stats.bufferedBytes, bytes.length - countZeroBytes(bytes), 'every non-zero block written once');
  checkImage(t, out, bytes, dir, qemuImg);
});

t.test('direct: false writes everything buffered, same bytes', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = diskDir(t);
  const { bytes, source } = fixture();
  const out = join(dir, 'out.raw');
  const stats = await writeRawFile(source(), out, { direct: false });
  t.same(stats, { directBytes: 0, bufferedBytes: bytes.length - countZeroBytes(bytes), directRefused: false });
  checkImage(t, out, bytes, dir, qemuImg);
});

t.test('EINVAL from an O_DIRECT write mid-file: that batch and the rest go buffered', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = diskDir(t);
  const { bytes, source } = fixture();
  const out = join(dir, 'out.raw');
  let calls = 0;
  let real: FileHandle | undefined;
  const stats = await writeRawFile(source(), out, {
    openDirect: async (path) => {
      real = await openDirect(path);
      if (!real) return undefined;
      const writev = real.writev.bind(real);
      // The second write is refused as a file system without O_DIRECT support would refuse it.
      real.writev = (async (buffers: NodeJS.ArrayBufferView[], position?: number | null) => {
        if (++calls === 2) throw Object.assign(new Error('EINVAL: invalid argument, writev'), { code: 'EINVAL', errno: -22, syscall: 'writev' });
        return writev(buffers, position ?? undefined);
      }) as FileHandle['writev'];
      return real;
    },
  });
  checkImage(t, out, bytes, dir, qemuImg);
  if (real) {
    t.ok(calls >= 2 && calls <= 3, `${calls} O_DIRECT writes tried (2 may be in flight when one is refused)`);
    t.ok(stats.directRefused, 'refusal recorded');
    t.ok(stats.directBytes > 0 && stats.bufferedBytes > 1000, `before: ${stats.directBytes} direct, after: ${stats.bufferedBytes} buffered`);
  } else {
    t.ok(stats.directRefused, `${dir}: O_DIRECT refused at open`);
  }
});

t.test('any other error from an O_DIRECT write fails the write with a coded error', async (t) => {
  const dir = diskDir(t);
  const { source } = fixture();
  const out = join(dir, 'out.raw');
  const attempt = writeRawFile(source(), out, {
    openDirect: async (path) => {
      const fh = await openDirect(path);
      if (!fh) return undefined;
      fh.writev = (async () => {
        throw Object.assign(new Error('EIO: i/o error, writev'), { code: 'EIO', errno: -5, syscall: 'writev' });
      }) as FileHandle['writev'];
      return fh;
    },
  });
  if (!(await directWorks(dir))) {
    await attempt;
    t.pass(`${dir}: O_DIRECT refused at open, nothing to inject`);
    return;
  }
  await t.rejects(attempt, { code: 'SV_ERR_CORE_IO', message: /O_DIRECT/ });
});

t.test('bounded random layouts (block sizes, alignment, holes, tails): bytes always match', async (t) => {
  const dir = diskDir(t);
  const rand = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (let round = 0; round < 24; round++) {
    const blockSize = pick([4096, 6144, 8192, 65536, 1 << 20] as const);
    const size = 1 + Math.floor(rand() * 3 * (1 << 20));
    const bytes = Buffer.alloc(size);
    const kinds: Array<'null' | 'zeros' | 'aligned' | 'misaligned'> = [];
    for (let at = 0, i = 0; at < size; at += blockSize, i++) {
      const k = pick(['null', 'zeros', 'aligned', 'aligned', 'misaligned'] as const);
      kinds.push(k);
      if (k === 'aligned' || k === 'misaligned') randomFillSync(bytes, at, Math.min(blockSize, size - at));
    }
    const source: BlockSource = {
      virtualSize: size,
      blockSize,
      async *blocks() {
        for (let i = 0; i < kinds.length; i++) {
          const start = i * blockSize;
          const len = Math.min(blockSize, size - start);
          const k = kinds[i]!;
          if (k === 'null') {
            yield { index: i, data: null };
            continue;
          }
          const data = k === 'aligned' ? allocAligned(len) : Buffer.allocUnsafeSlow(len + 64).subarray(3, 3 + len);
          if (k === 'zeros') data.fill(0);
          else bytes.copy(data, 0, start, start + len);
          yield { index: i, data };
        }
      },
    };
    const out = join(dir, `r${round}.raw`);
    const stats = await writeRawFile(source, out);
    const got = readFileSync(out);
    if (!got.equals(bytes)) t.fail(`round ${round}: block size ${blockSize}, size ${size}: bytes differ`);
    t.equal(stats.directBytes + stats.bufferedBytes, bytes.length - countZeroBytes(bytes, blockSize), `round ${round}: every non-zero block written once`);
    rmSync(out);
  }
});

function countZeroBytes(bytes: Buffer, blockSize = BLOCK): number {
  let n = 0;
  for (let at = 0; at < bytes.length; at += blockSize) {
    const block = bytes.subarray(at, at + blockSize);
    if (block.every((x) => x === 0)) n += block.length;
  }
  return n;
}
