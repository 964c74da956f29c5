/**
 * The common entry points: format detection by magic for every fixture, the raw path over every fixture
 * (a raw open reads the file itself), the writeDisk contract (no overwrite unless asked, temp file removed on
 * failure, no writer → coded error), and the VHD-specific detection corner cases.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ImageFile } from '../../src/formats/file.js';
import { detectFormat, openDisk } from '../../src/formats/open.js';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { FIXTURE_IMAGES, tempDir } from '../helpers/env.js';
import { fixture, hashImage } from './vhd-fixture-helpers.js';

const EXPECTED: Record<string, string> = {
  vhdx: 'vhdx',
  vhd: 'vhd',
};

async function fileSha(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 8 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

t.test('every fixture is detected by its magic, and reads as raw byte for byte', async (t) => {
  const dir = tempDir(t);
  const names = readdirSync(FIXTURE_IMAGES).filter((n) => /\.(gz|bz2)$/u.test(n));
  t.ok(names.length >= 12, 'fixtures present');
  for (const name of names) {
    const path = fixture(dir, name);
    const file = await ImageFile.open(path);
    const format = await detectFormat(file);
    await file.close();
    const ext = name.replace(/\.(gz|bz2)$/u, '').split('.').pop()!;
    t.equal(format, EXPECTED[ext], `${name} detected as ${EXPECTED[ext]}`);
    const raw = await openDisk(path, { format: 'raw' });
    t.equal(raw.info.virtualSize, (await import('node:fs')).statSync(path).size);
    if (raw.info.virtualSize <= 64 << 20) t.equal(await hashImage(raw), await fileSha(path), `${name}: raw path reads the file itself`);
    else {
      const fd = openSync(path, 'r');
      for (const at of [0, Math.floor(raw.info.virtualSize / 3), raw.info.virtualSize - (1 << 20)]) {
        const want = Buffer.alloc(1 << 20);
        readSync(fd, want, 0, want.length, at);
        t.ok((await raw.read(at, 1 << 20)).equals(want), `${name}: raw read at ${at} is the file's bytes`);
      }
      closeSync(fd);
    }
    await raw.close();
  }
});

t.test('anything else is raw; tiny files too', async (t) => {
  const dir = tempDir(t);
  for (const [name, bytes] of [['empty', Buffer.alloc(0)], ['tiny', Buffer.from('conecti')], ['text', Buffer.from('hello world\n'.repeat(100))]] as const) {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    const image = await openDisk(path);
    t.equal(image.info.format, 'raw', name);
    t.equal(image.info.virtualSize, bytes.length);
    await image.close();
  }
  await t.rejects(openDisk(join(dir, 'missing')), { code: 'SV_ERR_CORE_IO' });
});

t.test('a VHD footer copy at 0 with the rest cut off is a truncated VHD, never a raw disk of a few bytes', async (t) => {
  const dir = tempDir(t);
  const footer = Buffer.alloc(512);
  footer.write('conectix', 0, 'latin1');
  for (const [name, bytes] of [['magic only', Buffer.from('conectix')], ['footer copy', footer], ['footer and a bit', Buffer.concat([footer, Buffer.alloc(488)])]] as const) {
    const path = join(dir, name.replace(/ /gu, '-'));
    writeFileSync(path, bytes);
    await t.rejects(openDisk(path), { code: /^SV_ERR_(FORMAT_TRUNCATED|VHD_[A-Z_]+)$/u }, name);
  }
});

t.test('writeDisk: refuses to overwrite, cleans its temp file on failure, no writer → coded error', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'a.vhd');
  writeFileSync(out, 'keep me');
  const src: BlockSource = { virtualSize: 1 << 20, blockSize: 1 << 20, async *blocks() { yield { index: 0, data: Buffer.alloc(1 << 20, 1) }; } };
  await t.rejects(writeDisk('vhd', src, out), { code: 'SV_ERR_FORMAT_OUTPUT_EXISTS' });
  const failing: BlockSource = {
    virtualSize: 4 << 20, blockSize: 1 << 20,
    async *blocks() { yield { index: 0, data: Buffer.alloc(1 << 20, 1) }; throw new Error('source broke'); },
  };
  await t.rejects(writeDisk('vhd', failing, join(dir, 'b.vhd')));
  t.same(readdirSync(dir).sort(), ['a.vhd'], 'no temp file or partial output left');
  await t.rejects(writeDisk('qcow2' as 'vhd', src, join(dir, 'c')), { code: 'SV_ERR_FORMAT_NO_WRITER' });
  await t.rejects(writeDisk('vhd', { ...src, virtualSize: 3 * 2 ** 40 }, join(dir, 'd.vhd')), { code: 'SV_ERR_VHD_TOO_LARGE' });
  await t.rejects(writeDisk('vhd', src, join(dir, 'e.vhd'), { blockSize: 3000 }), { code: 'SV_ERR_FORMAT_BAD_OPTION' });
});

t.test('a dynamic VHD whose end footer is gone is still detected (copy at offset 0)', async (t) => {
  const dir = tempDir(t);
  const path = fixture(dir, 'qemu-ext2.vhd.gz');
  const { readFileSync } = await import('node:fs');
  const bytes = readFileSync(path);
  bytes.fill(0xee, bytes.length - 512);
  writeFileSync(path, bytes);
  const image = await openDisk(path);
  t.equal(image.info.format, 'vhd');
  t.equal(image.info.extra.footerSource, 'copy at offset 0');
  t.equal(await hashImage(image), '870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99');
  await image.close();
});
