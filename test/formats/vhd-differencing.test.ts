/**
 * Differencing VHD chains built with our writer (qemu-img cannot create VHD children), checked sector by
 * sector against an independent implementation of the specification's merge rule: a sector comes from the
 * nearest image in the chain whose block is allocated with that sector's bitmap bit set (MSB first); a
 * dynamic base gives zero where it has nothing. Also: locators (relative after a move), missing, mismatched
 * and circular parents, and the depth limit.
 */
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { openDisk } from '../../src/formats/open.js';
import type { BlockSource } from '../../src/formats/types.js';
import { parentCandidates } from '../../src/formats/vhd/reader.js';
import { writeDisk } from '../../src/formats/write.js';
import { tempDir } from '../helpers/env.js';
import { hashImage, rng, sha256 } from './vhd-fixture-helpers.js';

const SIZE = 8 << 20;
const SRC_BLOCK = 256 << 10;

/** A source over `buf` giving only the blocks `pick` selects (null = inherit from parent / unallocated). */
function bufferSource(buf: Buffer, pick: (i: number) => boolean): BlockSource {
  return {
    virtualSize: buf.length,
    blockSize: SRC_BLOCK,
    async *blocks() {
      for (let i = 0; i * SRC_BLOCK < buf.length; i++) {
        yield { index: i, data: pick(i) ? Buffer.from(buf.subarray(i * SRC_BLOCK, (i + 1) * SRC_BLOCK)) : null };
      }
    },
  };
}

/** The spec's merge rule, read straight from the files (independent of src/formats). */
function specMerge(chain: string[]): Buffer {
  const files = chain.map((p) => readFileSync(p));
  const out = Buffer.alloc(SIZE);
  for (let sector = 0; sector < SIZE / 512; sector++) {
    for (const f of files) {
      const foot = f.subarray(f.length - 512);
      const hdr = Number(foot.readBigUInt64BE(16));
      const bat = Number(f.readBigUInt64BE(hdr + 16));
      const bs = f.readUInt32BE(hdr + 32);
      const type = foot.readUInt32BE(60);
      const block = Math.floor((sector * 512) / bs);
      const entry = f.readUInt32BE(bat + block * 4);
      if (entry === 0xffffffff) continue;
      const bmBytes = Math.ceil(bs / 512 / 8 / 512) * 512;
      const inBlock = sector - (block * bs) / 512;
      const bit = (f[entry * 512 + (inBlock >> 3)]! >> (7 - (inBlock & 7))) & 1;
      if (bit === 1) {
        f.copy(out, sector * 512, entry * 512 + bmBytes + inBlock * 512, entry * 512 + bmBytes + inBlock * 512 + 512);
        break;
      }
      if (type === 3) break; // a dynamic base: unwritten sectors read as zero
    }
  }
  return out;
}

async function buildChain(dir: string) {
  const rand = rng(42);
  const base = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i += 4096) if (rand() < 0.5) base.fill(Math.floor(rand() * 255) + 1, i, i + 4096);
  const basePath = join(dir, 'base.vhd');
  await writeDisk('vhd', bufferSource(base, () => true), basePath, { blockSize: 1 << 20 });

  const c1 = Buffer.from(base);
  c1.fill(0xc1, 512 * 3, 512 * 7); // a few sectors: partial bitmap
  c1.fill(0, 2 << 20, 3 << 20); // zeroing over data: stored as zeros
  c1.fill(0xee, (5 << 20) + 100, (5 << 20) + 1000); // unaligned inside sectors
  c1.fill(0, (6 << 20) + 256 * 1024, 7 << 20); // zeroing in a block kept below
  const keep1 = (i: number) => i % 3 !== 2;
  for (let i = 0; i * SRC_BLOCK < SIZE; i++) if (!keep1(i)) base.copy(c1, i * SRC_BLOCK, i * SRC_BLOCK, (i + 1) * SRC_BLOCK); // null blocks inherit
  const c1Path = join(dir, 'c1.vhd');
  await writeDisk('vhd', bufferSource(c1, keep1), c1Path, { variant: 'differencing', parentPath: basePath, blockSize: 512 << 10 });

  const c2 = Buffer.from(c1);
  c2.fill(0xc2, 512 * 5, 512 * 9); // overlaps c1's sectors
  c2.fill(0x42, SIZE - 512, SIZE); // last sector
  const c2Path = join(dir, 'c2.vhd');
  await writeDisk('vhd', bufferSource(c2, (i) => i === 0 || i === SIZE / SRC_BLOCK - 1), c2Path, { variant: 'differencing', parentPath: c1Path, blockSize: 2 << 20 });
  return { base, c1, c2, basePath, c1Path, c2Path };
}

t.test('a 3-image chain reads as the merge rule says, block by block', async (t) => {
  const dir = tempDir(t);
  const c = await buildChain(dir);
  // Source blocks given as null in c1 must inherit; c1 content there equals base, so the model is c1 itself.
  const merged1 = specMerge([c.c1Path, c.basePath]);
  const merged2 = specMerge([c.c2Path, c.c1Path, c.basePath]);
  t.ok(merged1.equals(c.c1), 'spec merge of c1 equals the model');
  t.ok(merged2.equals(c.c2), 'spec merge of c2 equals the model');

  const img = await openDisk(c.c2Path);
  t.teardown(() => img.close());
  t.equal(img.info.variant, 'differencing');
  t.equal(img.info.parent?.path, c.c1Path);
  t.equal(img.info.parent?.parent?.path, c.basePath);
  t.equal(img.info.parent?.parent?.variant, 'dynamic');
  for (let b = 0; b < SIZE; b += 512 << 10) {
    const got = await img.read(b, 512 << 10);
    if (!got.equals(merged2.subarray(b, b + (512 << 10)))) t.fail(`block at ${b} differs from the merge rule`);
  }
  t.equal(await hashImage(img), sha256(merged2), 'whole-disk hash');
  const odd = await img.read(2000, 3 << 20);
  t.ok(odd.equals(merged2.subarray(2000, 2000 + (3 << 20))), 'unaligned read across blocks and layers');

  const extents = await img.extents();
  t.equal(extents.reduce((n, e) => n + e.length, 0), SIZE);
  for (const e of extents) {
    if (e.kind !== 'data' && !merged2.subarray(e.offset, e.offset + e.length).equals(Buffer.alloc(e.length))) t.fail(`non-data extent at ${e.offset} holds data`);
  }
  const extra = img.info.extra.parent as { locators: Array<{ platform: string }>; timeStampMatches: boolean };
  t.same(extra.locators.map((l) => l.platform), ['W2ru', 'W2ku', 'MacX']);
  t.equal(extra.timeStampMatches, true);

  // The partial bitmap path is exercised: c1's first block has only some sectors present.
  const c1file = readFileSync(c.c1Path);
  const entry0 = c1file.readUInt32BE(1536);
  t.not(entry0, 0xffffffff);
  t.equal(c1file[entry0 * 512], 0b00011110, 'sectors 3..6 present in c1 block 0 bitmap (MSB first)');
});

t.test('relative locator still finds the parents after the chain moves', async (t) => {
  const dir = tempDir(t);
  const c = await buildChain(dir);
  const moved = join(dir, 'moved');
  mkdirSync(moved);
  for (const n of ['base.vhd', 'c1.vhd', 'c2.vhd']) renameSync(join(dir, n), join(moved, n));
  const img = await openDisk(join(moved, 'c2.vhd'));
  t.teardown(() => img.close());
  t.equal(img.info.parent?.path, join(moved, 'c1.vhd'));
  t.equal(await hashImage(img), sha256(c.c2));
});

t.test('missing, mismatched, circular and too deep chains are refused with coded errors', async (t) => {
  const dir = tempDir(t);
  const c = await buildChain(dir);

  const deep = await openDisk(c.c2Path, { maxDepth: 2 }).catch((e: unknown) => e);
  t.ok(hasCode(deep, 'SV_ERR_FORMAT_CHAIN_TOO_DEEP'), String(deep));

  // Mismatch: another VHD of the same size where c1 expects base.
  const other = join(dir, 'other.vhd');
  await writeDisk('vhd', bufferSource(Buffer.alloc(SIZE, 1), () => true), other);
  copyFileSync(c.basePath, join(dir, 'base.keep'));
  copyFileSync(other, c.basePath);
  const mismatch = await openDisk(c.c1Path).catch((e: unknown) => e);
  t.ok(hasCode(mismatch, 'SV_ERR_FORMAT_PARENT_MISMATCH'), String(mismatch));
  t.match(String(mismatch), /expects VHD unique id/u);

  // Missing.
  rmSync(c.basePath);
  const missing = await openDisk(c.c1Path).catch((e: unknown) => e);
  t.ok(hasCode(missing, 'SV_ERR_FORMAT_PARENT_NOT_FOUND'), String(missing));
  t.match(String((missing as Error).message), /base\.vhd/u);

  // Circular: base.vhd replaced by a copy of c2 (whose parent is c1, whose parent is base.vhd...).
  copyFileSync(c.c2Path, c.basePath);
  const cycle = await openDisk(c.c2Path).catch((e: unknown) => e);
  t.ok(hasCode(cycle, 'SV_ERR_FORMAT_PARENT_CYCLE'), String(cycle));
});

t.test('differencing writer refuses a parent of another size or format', async (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'base.vhd');
  await writeDisk('vhd', bufferSource(Buffer.alloc(SIZE, 3), () => true), base);
  const small = Buffer.alloc(SIZE / 2);
  await t.rejects(writeDisk('vhd', bufferSource(small, () => true), join(dir, 'c.vhd'), { variant: 'differencing', parentPath: base }), { code: 'SV_ERR_FORMAT_BAD_OPTION' });
  const raw = join(dir, 'base.raw');
  await writeDisk('raw', bufferSource(Buffer.alloc(SIZE, 3), () => true), raw);
  await t.rejects(writeDisk('vhd', bufferSource(Buffer.alloc(SIZE), () => true), join(dir, 'd.vhd'), { variant: 'differencing', parentPath: raw }), { code: 'SV_ERR_FORMAT_BAD_OPTION' });
  await t.rejects(writeDisk('vhd', bufferSource(Buffer.alloc(SIZE), () => true), join(dir, 'e.vhd'), { variant: 'differencing' }), { code: 'SV_ERR_FORMAT_BAD_OPTION' });
});

t.test('parent candidates from Windows locators: relative first, then absolute, then names next to the child', async (t) => {
  const got = parentCandidates('/vms/a/child.avhd', [
    { platform: 'W2ku', offset: 0, length: 0, path: 'C:\\Hyper-V\\Disks\\base.vhd' },
    { platform: 'W2ru', offset: 0, length: 0, path: '.\\..\\b\\base.vhd' },
    { platform: 'MacX', offset: 0, length: 0, path: '/Users/x/base.vhd' },
    { platform: 'Mac ', offset: 0, length: 0, path: null },
  ], 'C:\\Hyper-V\\Disks\\base.vhd');
  t.same(got, ['/vms/b/base.vhd', '/Users/x/base.vhd', '/vms/a/base.vhd', '/vms/a/base.vhd', '/vms/a/base.vhd', '/vms/a/base.vhd']);
});

t.test('disk info shows the whole chain', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { childEnv, CLI, nodeCommand } = await import('../helpers/env.js');
  const dir = tempDir(t);
  const c = await buildChain(dir);
  const r = spawnSync(...nodeCommand([CLI, 'disk', 'info', '--json', c.c2Path]), { encoding: 'utf8', env: childEnv() });
  t.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { variant: string; chain: Array<{ path: string; variant: string }>; allocation: Record<string, number> };
  t.equal(info.variant, 'differencing');
  t.same(info.chain.map((x) => [x.path, x.variant]), [[c.c1Path, 'differencing'], [c.basePath, 'dynamic']]);
  t.equal(info.allocation.data + info.allocation.zero + info.allocation.unallocated, SIZE);
});
