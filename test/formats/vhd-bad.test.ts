/**
 * Bad VHD input: each case is refused with a catalogued error that names the file, the structure and the
 * offset; nothing crashes, hangs, or allocates in proportion to a size the file claims.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { openDisk } from '../../src/formats/open.js';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { tempDir } from '../helpers/env.js';
import { fixVhdChecksums, isCatalogued } from './vhd-fixture-helpers.js';

const SIZE = 4 << 20;

function source(fill: number): BlockSource {
  return {
    virtualSize: SIZE,
    blockSize: 1 << 20,
    async *blocks() {
      yield { index: 0, data: Buffer.alloc(1 << 20, fill) };
      yield { index: 2, data: Buffer.alloc(1 << 20, fill + 1) };
    },
  };
}

interface Made { dynamic: Buffer; fixed: Buffer; child: Buffer; dir: string }

async function make(t: Parameters<typeof tempDir>[0]): Promise<Made> {
  const dir = tempDir(t);
  await writeDisk('vhd', source(1), join(dir, 'dyn.vhd'), { blockSize: 1 << 20 });
  await writeDisk('vhd', source(1), join(dir, 'fixed.vhd'), { variant: 'fixed' });
  await writeDisk('vhd', source(5), join(dir, 'child.vhd'), { variant: 'differencing', parentPath: join(dir, 'dyn.vhd'), blockSize: 1 << 20 });
  return { dynamic: readFileSync(join(dir, 'dyn.vhd')), fixed: readFileSync(join(dir, 'fixed.vhd')), child: readFileSync(join(dir, 'child.vhd')), dir };
}

async function expectError(t: Test, dir: string, name: string, bytes: Buffer, codes: string[], structure?: RegExp): Promise<void> {
  const path = join(dir, `${name.replace(/\W+/gu, '-')}.vhd`);
  writeFileSync(path, bytes);
  const err = await (async () => {
    const image = await openDisk(path, { format: 'vhd' });
    try {
      await image.extents();
      await image.read(0, image.info.virtualSize);
    } finally {
      await image.close();
    }
  })().then(() => undefined, (e: unknown) => e);
  const e = err as { code?: string; message?: string; details?: Record<string, unknown> } | undefined;
  t.ok(isCatalogued(err), `${name}: a catalogued error (${String(err)})`);
  t.ok(e && codes.includes(String(e.code)), `${name}: code ${String(e?.code)} is one of ${codes.join(', ')}`);
  t.match(String(e?.message), path, `${name}: names the file`);
  if (structure) t.match(String(e?.details?.structure), structure, `${name}: names the structure`);
  t.type(e?.details?.offset, 'number', `${name}: gives the offset`);
}

t.test('truncated files', async (t) => {
  const m = await make(t);
  for (const cut of [600, 1536 + 2, 2048, 4096 + 1000, m.dynamic.length - 512 - 1000]) {
    await expectError(t, m.dir, `dynamic cut at ${cut}`, m.dynamic.subarray(0, cut), ['SV_ERR_FORMAT_TRUNCATED', 'SV_ERR_VHD_BAD_BAT', 'SV_ERR_VHD_BAD_FOOTER', 'SV_ERR_VHD_FOOTER_CHECKSUM']);
  }
  // Only the end footer's last byte missing: the copy at offset 0 still describes everything, so it reads.
  const oneShort = join(m.dir, 'one-short.vhd');
  writeFileSync(oneShort, m.dynamic.subarray(0, m.dynamic.length - 1));
  const img = await openDisk(oneShort);
  t.equal(img.info.extra.footerSource, 'copy at offset 0');
  t.ok((await img.read(0, 1 << 20)).equals(Buffer.alloc(1 << 20, 1)));
  await img.close();
  const short = Buffer.concat([m.fixed.subarray(0, SIZE / 2), m.fixed.subarray(m.fixed.length - 512)]);
  await expectError(t, m.dir, 'fixed data shorter than its footer says', short, ['SV_ERR_FORMAT_TRUNCATED'], /fixed data/u);
  await expectError(t, m.dir, 'file of 100 bytes', m.dynamic.subarray(0, 100), ['SV_ERR_FORMAT_TRUNCATED'], /footer/u);
});

t.test('BAT entries past the end of file or over metadata or other blocks', async (t) => {
  const m = await make(t);
  const bat = 1536;
  const edit = (entry: number, value: number) => {
    const b = Buffer.from(m.dynamic);
    b.writeUInt32BE(value, bat + entry * 4);
    return b;
  };
  await expectError(t, m.dir, 'entry past EOF', edit(0, 0x00ffffff), ['SV_ERR_VHD_BAD_BAT'], /allocation table/u);
  await expectError(t, m.dir, 'entry over the header', edit(0, 1), ['SV_ERR_VHD_BAD_BAT'], /allocation table/u);
  await expectError(t, m.dir, 'entry over the BAT', edit(1, 3), ['SV_ERR_VHD_BAD_BAT'], /allocation table/u);
  await expectError(t, m.dir, 'entry over the footer copy', edit(3, 0), ['SV_ERR_VHD_BAD_BAT'], /allocation table/u);
  const first = m.dynamic.readUInt32BE(bat);
  await expectError(t, m.dir, 'two entries on one block', edit(1, first + 1), ['SV_ERR_VHD_BAD_BAT'], /allocation table/u);
});

t.test('bad footer and header fields, with valid checksums', async (t) => {
  const m = await make(t);
  const foot = m.dynamic.length - 512;
  const edited = (f: (b: Buffer) => void) => {
    const b = Buffer.from(m.dynamic);
    f(b);
    b.copy(b, 0, foot, foot + 512); // keep the copy equal to the end footer
    f(b);
    fixVhdChecksums(b);
    return b;
  };
  await expectError(t, m.dir, 'absurd current size', edited((b) => b.writeBigUInt64BE(1n << 60n, foot + 48)), ['SV_ERR_VHD_BAD_SIZE'], /footer/u);
  await expectError(t, m.dir, 'table too small for the size', edited((b) => b.writeBigUInt64BE(1n << 40n, foot + 48)), ['SV_ERR_VHD_BAD_SIZE'], /dynamic disk header/u);
  await expectError(t, m.dir, 'huge table', edited((b) => { b.writeBigUInt64BE(1n << 40n, foot + 48); b.writeUInt32BE(0xffffffff, 512 + 28); }), ['SV_ERR_FORMAT_TRUNCATED'], /allocation table/u);
  await expectError(t, m.dir, 'billions of tiny blocks', edited((b) => { b.writeBigUInt64BE(1n << 40n, foot + 48); b.writeUInt32BE(0xffffffff, 512 + 28); b.writeUInt32BE(512, 512 + 32); }), ['SV_ERR_VHD_BAD_SIZE'], /dynamic disk header/u);
  await expectError(t, m.dir, 'block size not a power of two', edited((b) => b.writeUInt32BE(3 << 20, 512 + 32)), ['SV_ERR_VHD_BAD_HEADER'], /dynamic disk header/u);
  await expectError(t, m.dir, 'block size 2 GiB', edited((b) => b.writeUInt32BE(0x80000000, 512 + 32)), ['SV_ERR_VHD_BAD_HEADER'], /dynamic disk header/u);
  await expectError(t, m.dir, 'header cookie', edited((b) => b.write('cxspar5e', 512, 'latin1')), ['SV_ERR_VHD_BAD_HEADER'], /dynamic disk header/u);
  await expectError(t, m.dir, 'disk type 7', edited((b) => b.writeUInt32BE(7, foot + 60)), ['SV_ERR_VHD_UNSUPPORTED'], /footer/u);
  await expectError(t, m.dir, 'data offset past EOF', edited((b) => b.writeBigUInt64BE(1n << 40n, foot + 16)), ['SV_ERR_VHD_BAD_FOOTER'], /footer/u);
  await expectError(t, m.dir, 'table offset past EOF', edited((b) => b.writeBigUInt64BE(1n << 40n, 512 + 16)), ['SV_ERR_VHD_BAD_HEADER'], /dynamic disk header/u);
  const badSum = Buffer.from(m.dynamic);
  badSum[512 + 100]! ^= 1;
  await expectError(t, m.dir, 'header checksum', badSum, ['SV_ERR_VHD_HEADER_CHECKSUM'], /dynamic disk header/u);
  const bothFooters = Buffer.from(m.dynamic);
  bothFooters[foot + 100]! ^= 1;
  bothFooters[100]! ^= 1;
  await expectError(t, m.dir, 'both footers bad', bothFooters, ['SV_ERR_VHD_FOOTER_CHECKSUM'], /footer/u);
});

t.test('parent locator data outside the file', async (t) => {
  const m = await make(t);
  const b = Buffer.from(m.child);
  b.writeBigUInt64BE(1n << 40n, 512 + 576 + 16); // first locator's data offset
  fixVhdChecksums(b);
  await expectError(t, m.dir, 'locator past EOF', b, ['SV_ERR_VHD_BAD_LOCATOR'], /locator/u);
  const c = Buffer.from(m.child);
  c.writeUInt32BE(1 << 30, 512 + 576 + 8); // first locator's data length: 1 GiB
  fixVhdChecksums(c);
  await expectError(t, m.dir, 'locator absurdly long', c, ['SV_ERR_VHD_BAD_LOCATOR'], /locator/u);
});

t.test('reads outside the disk and use after close', async (t) => {
  const m = await make(t);
  const path = join(m.dir, 'ok.vhd');
  writeFileSync(path, m.dynamic);
  const image = await openDisk(path);
  await t.rejects(image.read(SIZE - 1, 2), { code: 'SV_ERR_FORMAT_READ_RANGE' });
  await t.rejects(image.read(-1, 2), { code: 'SV_ERR_FORMAT_READ_RANGE' });
  await t.rejects(image.read(0, 10, Buffer.alloc(5)), { code: 'SV_ERR_FORMAT_READ_RANGE' });
  t.equal((await image.read(0, 0)).length, 0);
  await image.close();
  await t.rejects(image.read(0, 512), { code: 'SV_ERR_FORMAT_CLOSED' });
});
