/**
 * Round trips with qemu (Debian qemu-utils): VHDs made by `qemu-img create -f vpc` (dynamic/fixed, force_size
 * on/off) and written with `qemu-io` read byte-identical to `qemu-img convert -O raw`; the VHDs we write
 * (dynamic at several block sizes, fixed) are equal to the source for `qemu-img compare` and our reader.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { imageBlockSource } from '../../src/formats/source.js';
import { writeDisk } from '../../src/formats/write.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { hashImage, sha256 } from './vhd-fixture-helpers.js';

const WRITES = [
  'write -P 0xab 1M 3M',
  'write -P 0x5c 50M 4k',
  'write -P 0x3d 7340544 1536', // unaligned to blocks, sector-aligned
  'write -P 0x77 20971000 700', // not sector aligned (qemu does read-modify-write)
];

function qemuInfo(path: string): { 'virtual-size': number } {
  return JSON.parse(run(requireTool('qemu-img'), ['info', '-f', 'vpc', '--output=json', path])) as { 'virtual-size': number };
}

for (const subformat of ['dynamic', 'fixed']) {
  for (const force of ['off', 'on']) {
    t.test(`qemu-img create -f vpc subformat=${subformat} force_size=${force}`, async (t) => {
      const qemuImg = requireTool('qemu-img');
      const qemuIo = requireTool('qemu-io');
      const dir = tempDir(t);
      const src = join(dir, 'src.vhd');
      run(qemuImg, ['create', '-q', '-f', 'vpc', '-o', `subformat=${subformat},force_size=${force}`, src, '100M']);
      const size = qemuInfo(src)['virtual-size'];
      const last = `write -P 0x99 ${size - 512} 512`;
      run(qemuIo, ['-f', 'vpc', ...[...WRITES, last].flatMap((c) => ['-c', c]), src]);
      run(qemuImg, ['convert', '-f', 'vpc', '-O', 'raw', src, join(dir, 'src.raw')]);
      const expected = sha256(readFileSync(join(dir, 'src.raw')));

      const image = await openDisk(src);
      t.teardown(() => image.close());
      t.equal(image.info.variant, subformat);
      t.equal(image.info.virtualSize, size, 'same virtual size as qemu');
      t.equal(await hashImage(image), expected, 'reads as qemu-img convert -O raw');

      const outputs: Array<[string, Parameters<typeof writeDisk>[3]]> = [
        ['dyn-2m.vhd', { variant: 'dynamic' }],
        ['dyn-512k.vhd', { variant: 'dynamic', blockSize: 512 << 10 }],
        ['dyn-8m.vhd', { variant: 'dynamic', blockSize: 8 << 20 }],
        ['fixed.vhd', { variant: 'fixed' }],
      ];
      for (const [name, options] of outputs) {
        const out = join(dir, name);
        await writeDisk('vhd', imageBlockSource(image, 1 << 20), out, options);
        t.equal(qemuInfo(out)['virtual-size'], size, `${name}: qemu-img info size`);
        t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'vpc', '-F', 'vpc', src, out]), `${name}: qemu-img compare says identical`);
        const back = await openDisk(out);
        t.equal(await hashImage(back), expected, `${name}: our reader reads it back identically`);
        const ext = await back.extents();
        t.ok(ext.some((e) => e.kind !== 'data') || options?.variant === 'fixed', `${name}: zero blocks stay unallocated`);
        await back.close();
      }
      const rawOut = join(dir, 'out.raw');
      await writeDisk('raw', imageBlockSource(image), rawOut);
      t.equal(sha256(readFileSync(rawOut)), expected, 'raw sparse output');
      t.doesNotThrow(() => run(qemuImg, ['compare', '-q', '-f', 'raw', '-F', 'vpc', rawOut, src]), 'qemu-img compare raw vs vpc');
    });
  }
}

t.test('qemu-img check has no vpc support (so compare + info + our reader are the checks)', async (t) => {
  const qemuImg = requireTool('qemu-img');
  const dir = tempDir(t);
  const out = join(dir, 'a.vhd');
  await writeDisk('vhd', { virtualSize: 4 << 20, blockSize: 1 << 20, async *blocks() { yield { index: 1, data: Buffer.alloc(1 << 20, 7) }; } }, out);
  const r = (await import('node:child_process')).spawnSync(qemuImg, ['check', '-f', 'vpc', out], { encoding: 'utf8' });
  t.match(r.stderr, /does not support checks/u, 'qemu-img 7.2 cannot check vpc images');
  t.doesNotThrow(() => run(qemuImg, ['convert', '-f', 'vpc', '-O', 'raw', out, join(dir, 'a.raw')]));
  const raw = readFileSync(join(dir, 'a.raw'));
  t.ok(raw.subarray(1 << 20, 2 << 20).equals(Buffer.alloc(1 << 20, 7)) && raw.subarray(0, 1 << 20).equals(Buffer.alloc(1 << 20)), 'qemu reads what we wrote');
});
