/**
 * Bounded, seeded fuzz of format detection (src/formats/detect.ts) as openDisk runs it for a file with no
 * telling name: random files of random sizes, and real VHD/VHDX images with the bytes detection looks at
 * (identifier, footer, headers and region table signatures, dynamic header cookie) mutated. Every case must
 * open (as raw, vhd or vhdx) or fail with a catalogued SvError that is not an internal fault; a VHD or VHDX
 * with one damaged byte is never opened as raw.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { specOf } from '../../src/errors/catalogue.js';
import { SvError } from '../../src/errors/index.js';
import { openDisk } from '../../src/formats/open.js';
import { tempDir } from '../helpers/env.js';
import { fixture, rng } from './vhd-fixture-helpers.js';

const ITERATIONS = 60;
const KiB = 1024;

async function outcome(path: string): Promise<string> {
  try {
    const img = await openDisk(path);
    await img.close();
    return img.info.format;
  } catch (err) {
    if (err instanceof SvError && specOf(err.code) && err.code !== 'SV_ERR_CORE_INTERNAL') return err.code;
    throw err;
  }
}

t.test('random files and mutated VHD/VHDX images: an image or a catalogued error', async (t) => {
  const dir = tempDir(t);
  const next = rng(0x5eed9);
  const int = (n: number): number => Math.floor(next() * n);
  const bases = [fixture(dir, 'win10-dynamic.vhdx.gz'), fixture(dir, 'win10-fixed.vhd.gz'), fixture(dir, 'win10-dynamic.vhd.gz')].map((p) => readFileSync(p));
  const seen = new Map<string, number>();
  const path = join(dir, 'case.img');
  for (let i = 0; i < ITERATIONS; i++) {
    let bytes: Buffer;
    let oneByte = false;
    if (i % 3 === 0) {
      bytes = Buffer.alloc(int(320 * KiB));
      for (let k = 0; k < bytes.length; k += 4096) bytes[k] = int(256);
      for (const [at, s] of [[0, 'vhdxfile'], [64 * KiB, 'head'], [192 * KiB, 'regi'], [bytes.length - 512, 'conectix'], [512, 'cxsparse']] as const) {
        if (next() < 0.3 && at >= 0 && at + s.length <= bytes.length) bytes.write(s, at, 'latin1');
      }
    } else {
      bytes = Buffer.from(bases[int(bases.length)]!);
      const zones = [0, 64 * KiB, 128 * KiB, 192 * KiB, 256 * KiB, 512, bytes.length - 512, bytes.length - 500, bytes.length - 452];
      const mutations = 1 + int(6);
      oneByte = mutations === 1;
      for (let m = mutations; m > 0; m--) {
        const at = Math.min(bytes.length - 1, zones[int(zones.length)]! + int(16));
        bytes[at] = next() < 0.5 ? bytes[at]! ^ (1 << int(8)) : int(256);
      }
      if (next() < 0.1) {
        bytes = bytes.subarray(0, int(bytes.length));
        oneByte = false;
      }
    }
    writeFileSync(path, bytes);
    const got = await outcome(path);
    seen.set(got, (seen.get(got) ?? 0) + 1);
    if (oneByte && got === 'raw') t.fail(`case ${i}: a VHD/VHDX with one damaged byte opened as raw`);
  }
  t.ok(seen.size >= 4, `varied outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
});
