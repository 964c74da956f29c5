/**
 * Helpers for the format tests: decompress README fixtures into a temp folder, hash a DiskImage by streaming,
 * edit VHD structures (and fix their checksums) to build bad inputs.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { isSvError } from '../../src/errors/index.js';
import { CATALOGUE } from '../../src/errors/catalogue.js';
import type { DiskImage } from '../../src/formats/types.js';
import { FIXTURE_IMAGES, requireTool } from '../helpers/env.js';

/** Decompress fixture `name` (e.g. "win10-dynamic.vhd.gz") into `dir`; returns the decompressed path. */
export function fixture(dir: string, name: string): string {
  const src = join(FIXTURE_IMAGES, name);
  const out = join(dir, name.replace(/\.(gz|bz2)$/u, ''));
  if (name.endsWith('.gz')) writeFileSync(out, gunzipSync(readFileSync(src)));
  else if (name.endsWith('.bz2')) {
    const bzip2 = requireTool('bzip2');
    const r = spawnSync('sh', ['-c', `"${bzip2}" -dc "${src}" > "${out}"`]);
    if (r.status !== 0) throw new Error(`bzip2 -dc ${src} failed: ${String(r.stderr)}`);
  } else writeFileSync(out, readFileSync(src));
  return out;
}

/** SHA-256 of the whole virtual disk, streamed in 8 MiB reads. */
export async function hashImage(image: DiskImage, chunk = 8 << 20): Promise<string> {
  const h = createHash('sha256');
  const size = image.info.virtualSize;
  const buf = Buffer.allocUnsafe(chunk);
  for (let o = 0; o < size; o += chunk) {
    const n = Math.min(chunk, size - o);
    h.update(await image.read(o, n, buf.subarray(0, n)));
  }
  return h.digest('hex');
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** True when `err` is an SvError whose code is in the catalogue. */
export function isCatalogued(err: unknown): boolean {
  return isSvError(err) && Object.hasOwn(CATALOGUE, err.code);
}

/** One's complement byte sum of `buf` with the 4 bytes at `at` taken as zero (VHD checksum). */
export function vhdSum(buf: Buffer, at: number): number {
  let s = 0;
  for (let i = 0; i < buf.length; i++) if (i < at || i >= at + 4) s += buf[i]!;
  return ~s >>> 0;
}

/** Rewrite the checksums of a VHD's end footer, footer copy (if any) and dynamic header after an edit. */
export function fixVhdChecksums(file: Buffer): void {
  const fixFooter = (at: number) => {
    if (file.toString('latin1', at, at + 8) !== 'conectix') return;
    const f = file.subarray(at, at + 512);
    f.writeUInt32BE(vhdSum(f, 64), 64);
  };
  fixFooter(file.length - 512);
  fixFooter(0);
  const foot = file.subarray(file.length - 512);
  const dataOffset = Number(foot.readBigUInt64BE(16));
  if (dataOffset + 1024 <= file.length && file.toString('latin1', dataOffset, dataOffset + 8) === 'cxsparse') {
    const h = file.subarray(dataOffset, dataOffset + 1024);
    h.writeUInt32BE(vhdSum(h, 36), 36);
  }
}

/** A deterministic xorshift PRNG (seeded; the fuzz tests are reproducible). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}
