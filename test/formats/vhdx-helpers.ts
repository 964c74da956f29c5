/**
 * Helpers of the VHDX tests: fixture decompression, a BlockSource over any DiskImage (null where extents say
 * zero/unallocated), hashing a whole disk, and qemu-img/qemu-io wrappers.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { BlockSource, DiskImage } from '../../src/formats/types.js';
import { FIXTURE_IMAGES, requireTool } from '../helpers/env.js';

/** Decompress fixture `name` (without .gz/.bz2) into `dir`; returns its path. */
export async function fixture(dir: string, name: string): Promise<string> {
  const out = join(dir, name);
  if (existsSync(out)) return out;
  const gz = join(FIXTURE_IMAGES, `${name}.gz`);
  if (existsSync(gz)) {
    await pipeline(createReadStream(gz), createGunzip(), createWriteStream(out));
    return out;
  }
  requireTool('bzip2');
  execFileSync('sh', ['-c', 'bzip2 -dc "$1" > "$2"', 'sh', join(FIXTURE_IMAGES, `${name}.bz2`), out]);
  return out;
}

/** The whole virtual disk through read() in `step`-byte reads, hashed with SHA-256. */
export async function sha256Of(img: DiskImage, step = 16 << 20): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(step);
  for (let o = 0; o < img.info.virtualSize; o += step) {
    const n = Math.min(step, img.info.virtualSize - o);
    await img.read(o, n, buf);
    h.update(buf.subarray(0, n));
  }
  return h.digest('hex');
}

/** A BlockSource over `img`: blocks the extents call zero/unallocated are null. */
export function imageSource(img: DiskImage, blockSize = 1 << 20): BlockSource {
  return {
    virtualSize: img.info.virtualSize,
    blockSize,
    async *blocks() {
      const extents = await img.extents();
      const count = Math.ceil(img.info.virtualSize / blockSize);
      let e = 0;
      for (let i = 0; i < count; i++) {
        const start = i * blockSize;
        const end = Math.min(img.info.virtualSize, start + blockSize);
        while (e < extents.length && extents[e]!.offset + extents[e]!.length <= start) e++;
        let data = false;
        for (let k = e; k < extents.length && extents[k]!.offset < end; k++) if (extents[k]!.kind === 'data') data = true;
        yield { index: i, data: data ? await img.read(start, end - start) : null };
      }
    },
  };
}

export function qemuImg(args: string[]): string {
  return execFileSync(requireTool('qemu-img'), args, { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function qemuIo(image: string, commands: string[]): void {
  const args = ['-f', 'vhdx'];
  for (const c of commands) args.push('-c', c);
  execFileSync(requireTool('qemu-io'), [...args, image], { stdio: ['ignore', 'pipe', 'pipe'] });
}
