/**
 * The real VHD images of ../shared/fixtures/images (Hyper-V, Windows 10, Disk2vhd, Virtual PC, qemu) read
 * exactly as the README's content SHA-256 says; the two bad-* fixtures are refused with coded errors.
 */
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { openDisk } from '../../src/formats/open.js';
import { tempDir } from '../helpers/env.js';
import { fixture, hashImage } from './vhd-fixture-helpers.js';

const FIXTURES: Array<{ name: string; size: number; sha?: string; variant: string; allUnallocated?: boolean }> = [
  { name: 'hyperv2012r2-dynamic.vhd.bz2', size: 136365211648, variant: 'dynamic', allUnallocated: true },
  { name: 'virtualpc-dynamic.vhd.bz2', size: 136363130880, variant: 'dynamic', allUnallocated: true },
  { name: 'd2v-zerofilled.vhd.bz2', size: 263454720, variant: 'dynamic', sha: '1ba076be94a8a64541c25aae8d5a5f8b0da758c3797af597e03acb431ff8d143' },
  { name: 'win10-fixed.vhd.gz', size: 10485760, variant: 'fixed', sha: '459325ab1fcd1d5ec9854cba790ee26378317cda177ffc1072008a1df88e6463' },
  { name: 'win10-dynamic.vhd.gz', size: 10485760, variant: 'dynamic', sha: 'ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784' },
  { name: 'qemu-ext2.vhd.gz', size: 4212736, variant: 'dynamic', sha: '870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99' },
];

t.test('VHD fixtures read to the README content hash', async (t) => {
  const dir = tempDir(t);
  for (const f of FIXTURES) {
    await t.test(f.name, async (t) => {
      const image = await openDisk(fixture(dir, f.name));
      t.teardown(() => image.close());
      t.equal(image.info.format, 'vhd');
      t.equal(image.info.variant, f.variant);
      t.equal(image.info.virtualSize, f.size, 'virtual size by the creator rule');
      const extents = await image.extents();
      t.equal(extents.reduce((n, e) => n + e.length, 0), f.size, 'extents cover the disk');
      if (f.allUnallocated) {
        t.same(extents, [{ offset: 0, length: f.size, kind: 'unallocated' }], 'an empty dynamic disk is one unallocated extent');
        const zero = Buffer.alloc(1 << 20);
        for (const at of [0, 1 << 30, f.size - (1 << 20), Math.floor(f.size / 2 / 512) * 512]) {
          t.ok((await image.read(at, 1 << 20)).equals(zero), `sample read at ${at} is zero`);
        }
        await t.rejects(image.read(f.size - 10, 11), { code: 'SV_ERR_FORMAT_READ_RANGE' });
      } else {
        t.equal(await hashImage(image), f.sha, 'content sha256');
        // Odd-sized, unaligned reads agree with the aligned ones.
        const whole = await image.read(0, Math.min(f.size, 6 << 20));
        const part = await image.read(1000, 3 << 20);
        t.ok(part.equals(whole.subarray(1000, 1000 + (3 << 20))), 'unaligned read matches');
      }
    });
  }
});

t.test('size rules: Hyper-V uses current size, Virtual PC the CHS geometry, Disk2vhd a saturated geometry', async (t) => {
  const dir = tempDir(t);
  const hv = await openDisk(fixture(dir, 'hyperv2012r2-dynamic.vhd.bz2'));
  const vpc = await openDisk(fixture(dir, 'virtualpc-dynamic.vhd.bz2'));
  const d2v = await openDisk(fixture(dir, 'd2v-zerofilled.vhd.bz2'));
  t.teardown(async () => { await hv.close(); await vpc.close(); await d2v.close(); });
  t.equal(hv.info.extra.sizeRule, 'current size');
  t.equal(vpc.info.extra.sizeRule, 'CHS geometry');
  t.equal(d2v.info.extra.sizeRule, 'current size');
  t.match(String(d2v.info.extra.sizeRuleReason), /saturated|d2v/u);
});

t.test('bad-* fixtures are refused with the checksum error, naming file, structure and offset', async (t) => {
  const dir = tempDir(t);
  for (const name of ['bad-footer-checksum.vhd.gz', 'bad-checksums-differencing.vhd.gz']) {
    const path = fixture(dir, name);
    const err = await openDisk(path).then(() => undefined, (e: unknown) => e);
    t.ok(hasCode(err, 'SV_ERR_VHD_FOOTER_CHECKSUM'), `${name}: ${String(err)}`);
    const e = err as { message: string; details: Record<string, unknown> };
    t.match(e.message, path);
    t.equal(e.details.structure, 'VHD footer');
    t.type(e.details.offset, 'number');
  }
});

t.test('a damaged end footer falls back to the copy at offset 0 (dynamic), and says so', async (t) => {
  const dir = tempDir(t);
  const path = fixture(dir, 'win10-dynamic.vhd.gz');
  const { readFileSync, writeFileSync } = await import('node:fs');
  const buf = readFileSync(path);
  buf.fill(0, buf.length - 512);
  writeFileSync(path, buf);
  const image = await openDisk(path);
  t.teardown(() => image.close());
  t.equal(image.info.extra.footerSource, 'copy at offset 0');
  t.match(String((image.info.extra.warnings as string[])[0]), /copy at offset 0/u);
  t.equal(await hashImage(image), 'ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784');
});
