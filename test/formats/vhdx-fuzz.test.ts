/**
 * Bounded, seeded fuzz of the VHDX reader: real images (our writer's dynamic and differencing images, one with
 * a pending log, and Windows 10's fixed VHDX) are mutated in place (random bytes, bit flips, 0xff/0x00 runs,
 * large integers), mostly inside the structures (headers, region tables, log, metadata, BAT), sometimes
 * with the header / region table CRC recomputed so the mutation reaches the parsers behind it. Each mutated
 * image must either open and read (extents, then reads) or fail with a catalogued SvError that is not an
 * internal fault. The original bytes are put back after each iteration.
 */
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { SvError } from '../../src/errors/index.js';
import { specOf } from '../../src/errors/catalogue.js';
import { crc32c, crc32cWithZeroedField } from '../../src/formats/crc32c.js';
import { openDisk } from '../../src/formats/open.js';
import { writeDisk } from '../../src/formats/write.js';
import { tempDir } from '../helpers/env.js';
import { fixture } from './vhdx-helpers.js';
import { baseImage, install, plan } from './vhdx-logfixture.js';

const MiB = 1 << 20;
const ITERATIONS = 90; // per base image

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

const ZONES: [number, number][] = [
  [64 * 1024, 64 * 1024 + 128], [128 * 1024, 128 * 1024 + 128], [192 * 1024, 192 * 1024 + 96], [256 * 1024, 256 * 1024 + 96],
  [1 * MiB, 1 * MiB + 12 * 1024], [2 * MiB - 8192, 2 * MiB], [2 * MiB, 2 * MiB + 256], [2 * MiB + 64 * 1024, 2 * MiB + 64 * 1024 + 200],
  [3 * MiB, 3 * MiB + 128],
];

async function exercise(path: string): Promise<'read' | string> {
  try {
    const img = await openDisk(path, { format: 'vhdx' });
    try {
      await img.extents();
      const size = img.info.virtualSize;
      const step = 4 * MiB;
      const reads = Math.min(4, Math.ceil(size / step));
      for (let i = 0; i < reads; i++) {
        const o = Math.floor((size / reads) * i / 512) * 512;
        await img.read(o, Math.min(step, size - o));
      }
    } finally {
      await img.close();
    }
    return 'read';
  } catch (err) {
    if (err instanceof SvError && specOf(err.code) && err.code !== 'SV_ERR_CORE_INTERNAL') return err.code;
    throw err;
  }
}

t.test('mutated VHDX images read or fail with catalogued errors', async (t) => {
  const dir = tempDir(t);
  const dynamic = join(dir, 'dynamic.vhdx');
  await writeDisk('vhdx', {
    virtualSize: 12 * MiB + 512, blockSize: MiB,
    async *blocks() { for (const i of [0, 3, 4, 12]) yield { index: i, data: Buffer.alloc(i === 12 ? 512 : MiB, i + 7) }; },
  }, dynamic, { blockSize: MiB });
  const child = join(dir, 'child.avhdx');
  await writeDisk('vhdx', {
    virtualSize: 12 * MiB + 512, blockSize: MiB,
    async *blocks() { yield { index: 1, data: Buffer.alloc(MiB, 1), ranges: [{ offset: 4096, length: 8192 }] }; yield { index: 4, data: Buffer.alloc(MiB, 2) }; },
  } as Parameters<typeof writeDisk>[1], child, { variant: 'differencing', parentPath: dynamic, blockSize: MiB });
  const logged = await baseImage(dir);
  await install(logged, await plan(logged));
  const fixed = await fixture(dir, 'win10-fixed.vhdx');

  const outcomes = new Map<string, number>();
  let seed = 20261124;
  for (const base of [dynamic, child, logged, fixed]) {
    const work = base === child ? base : join(dir, `work-${seed}.vhdx`);
    const pristine = join(dir, `pristine-${seed}.vhdx`);
    await copyFile(base, pristine);
    if (work !== base) await copyFile(base, work);
    const fh = await open(work, 'r+');
    const size = (await fh.stat()).size;
    const random = rng(seed++);
    try {
      for (let it = 0; it < ITERATIONS; it++) {
        const saved: [number, Buffer][] = [];
        const save = async (at: number, n: number): Promise<void> => {
          const b = Buffer.alloc(n);
          await fh.read(b, 0, n, at);
          saved.push([at, b]);
        };
        const count = 1 + Math.floor(random() * 4);
        for (let m = 0; m < count; m++) {
          let at: number;
          if (random() < 0.8) {
            const [a, b] = ZONES[Math.floor(random() * ZONES.length)]!;
            at = a + Math.floor(random() * (b - a));
          } else at = Math.floor(random() * (size - 8));
          const kind = Math.floor(random() * 5);
          const bytes = kind === 0 ? Buffer.from([Math.floor(random() * 256)])
            : kind === 1 ? Buffer.alloc(4, 0xff)
              : kind === 2 ? Buffer.alloc(8)
                : kind === 3 ? Buffer.from([0, 0, 0, 0x40 + Math.floor(random() * 0x40)])
                  : Buffer.from([Math.floor(random() * 8)]);
          await save(at, bytes.length);
          await fh.write(bytes, 0, bytes.length, at);
        }
        if (random() < 0.5) { // make headers and region tables valid again, so the mutation gets past them
          for (const off of [64 * 1024, 128 * 1024]) {
            await save(off, 4096);
            const h = Buffer.alloc(4096);
            await fh.read(h, 0, 4096, off);
            h.writeUInt32LE(crc32cWithZeroedField(h, 4, 4), 4);
            await fh.write(h, 0, 4096, off);
          }
          for (const off of [192 * 1024, 256 * 1024]) {
            await save(off, 65536);
            const r = Buffer.alloc(65536);
            await fh.read(r, 0, 65536, off);
            r.writeUInt32LE(0, 4);
            r.writeUInt32LE(crc32c(r), 4);
            await fh.write(r, 0, 65536, off);
          }
        }
        const outcome = await exercise(work);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        for (const [at, b] of saved.reverse()) await fh.write(b, 0, b.length, at);
      }
    } finally {
      await fh.close();
    }
    t.equal(await exercise(work), 'read', `${base}: restored image reads`);
  }
  t.comment(JSON.stringify(Object.fromEntries(outcomes)));
  t.ok((outcomes.get('read') ?? 0) > 0, 'some mutations still read');
  t.ok([...outcomes.keys()].some((k) => k.startsWith('SV_ERR_VHDX')), 'some mutations are refused');
});

t.test('mutated log entries with valid CRCs replay or fail with catalogued errors', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  const p = await plan(path);
  await install(path, p);
  const LOG_OFFSET = MiB;
  const LOG_LENGTH = MiB;
  const fh = await open(path, 'r+');
  const log = Buffer.alloc(LOG_LENGTH);
  await fh.read(log, 0, LOG_LENGTH, LOG_OFFSET);
  const pristine = Buffer.from(log);
  const random = rng(424242);
  const outcomes = new Map<string, number>();
  const entries = p.entries.slice(0, 3); // A (wrapping), B, C: the active sequence
  try {
    for (let it = 0; it < 120; it++) {
      pristine.copy(log);
      const e = entries[Math.floor(random() * entries.length)]!;
      const bytes = Buffer.from(e.bytes);
      const n = 1 + Math.floor(random() * 3);
      for (let m = 0; m < n; m++) {
        // Mostly the header and descriptors (first 512 bytes), sometimes the data sectors.
        const at = random() < 0.8 ? 8 + Math.floor(random() * 504) : Math.floor(random() * bytes.length);
        const kind = Math.floor(random() * 4);
        if (kind === 0) bytes[at] = Math.floor(random() * 256);
        else if (kind === 1) bytes.fill(0xff, at, Math.min(bytes.length, at + 4));
        else if (kind === 2) bytes.fill(0, at, Math.min(bytes.length, at + 8));
        else bytes[at] ^= 1 << Math.floor(random() * 8);
      }
      if (random() < 0.8) {
        bytes.writeUInt32LE(0, 4);
        bytes.writeUInt32LE(crc32c(bytes), 4);
      }
      for (let i = 0; i < bytes.length; i++) log[(e.position + i) % LOG_LENGTH] = bytes[i]!;
      await fh.write(log, 0, LOG_LENGTH, LOG_OFFSET);
      const outcome = await exercise(path);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    await fh.write(pristine, 0, LOG_LENGTH, LOG_OFFSET);
  } finally {
    await fh.close();
  }
  t.comment(JSON.stringify(Object.fromEntries(outcomes)));
  t.ok((outcomes.get('read') ?? 0) > 0, 'some mutated logs replay');
  t.equal(await exercise(path), 'read', 'the restored log replays');
});
