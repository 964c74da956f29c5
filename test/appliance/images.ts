/** Small real disk images for appliance tests: raw files with known content, and a VHD made by qemu-img. */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

/** A raw image of `mib` MiB: distinct data in the first `dataMib` MiB (per 64 KiB block, seeded), zeros after. */
export function makeRawImage(path: string, mib: number, dataMib: number, seed: number): Buffer {
  const buf = Buffer.alloc(mib << 20);
  const block = 64 * 1024;
  for (let off = 0; off < dataMib << 20; off += block) {
    // text-like, compressible, different in every block and for every seed
    const line = `seed ${seed} block ${off / block} shadowvault appliance test data `;
    buf.write(line.repeat(Math.ceil(block / line.length)).slice(0, block), off, 'latin1');
  }
  writeFileSync(path, buf);
  return buf;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
