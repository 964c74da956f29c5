/**
 * Seeded fuzz of the partition-table reader over real sfdisk/sgdisk images: bytes of the MBR, the EBRs, the
 * GPT headers and entries are mutated in the image file (half the time the GPT CRCs are then made right
 * again, so the checks behind them are reached too), the image is read, and the result must be a table or a
 * catalogued SV_ERR_VOLUME_* error: no crash, no hang. Plus an EBR chain crafted into a loop.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import t, { type Test } from 'tap';
import { hasCode, isSvError } from '../../src/errors/index.js';
import { openDisk } from '../../src/formats/open.js';
import { readPartitions } from '../../src/volumes/partitions/index.js';
import { crc32 } from '../../src/volumes/partitions/crc32.js';
import { GPT_HEADER } from '../../src/volumes/partitions/structs.js';
import { tempDir } from '../helpers/env.js';
import { rng } from '../formats/vhd-fixture-helpers.js';
import { DISK_BYTES, makeGpt, makeMbr } from './partition-images.js';

const ROUNDS = 250;

function pread(fd: number, at: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  readSync(fd, b, 0, len, at);
  return b;
}

async function outcome(path: string): Promise<string> {
  const disk = await openDisk(path);
  try {
    const table = await readPartitions(disk);
    return table.scheme;
  } catch (err) {
    if (isSvError(err) && err.code.startsWith('SV_ERR_VOLUME_')) return err.code;
    throw err;
  } finally {
    await disk.close();
  }
}

/** Recompute the GPT header's entries CRC and header CRC at `at` (after a mutation), as a writer would. */
function fixGpt(fd: number, at: number): void {
  const h = pread(fd, at, 512);
  const { entriesLba, entryCount, entrySize, headerSize } = GPT_HEADER.decode(h);
  const bytes = entryCount * entrySize;
  if (bytes <= 1 << 20 && entriesLba * 512 + bytes <= DISK_BYTES) h.writeUInt32LE(crc32(pread(fd, entriesLba * 512, bytes)), GPT_HEADER.fields.entriesCrc.offset);
  if (headerSize >= 92 && headerSize <= 512) h.writeUInt32LE(crc32(h.subarray(0, headerSize), GPT_HEADER.fields.headerCrc.offset, 4), GPT_HEADER.fields.headerCrc.offset);
  writeSync(fd, h, 0, 512, at);
}

async function fuzz(t: Test, path: string, regions: Array<[number, number]>, seed: number, gpt: boolean) {
  const random = rng(seed);
  const fd = openSync(path, 'r+');
  const saved = regions.map(([at, len]) => pread(fd, at, len));
  const seen = new Map<string, number>();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const flips = 1 + Math.floor(random() * 4);
      for (let i = 0; i < flips; i++) {
        const [at, len] = regions[Math.floor(random() * regions.length)]!;
        const pos = at + Math.floor(random() * len);
        const b = Buffer.from([Math.floor(random() * 256)]);
        writeSync(fd, b, 0, 1, pos);
      }
      if (gpt && random() < 0.5) {
        fixGpt(fd, 512);
        fixGpt(fd, DISK_BYTES - 512);
      }
      const got = await outcome(path);
      seen.set(got, (seen.get(got) ?? 0) + 1);
      regions.forEach(([at], i) => writeSync(fd, saved[i]!, 0, saved[i]!.length, at));
    }
  } finally {
    closeSync(fd);
  }
  t.pass(`${ROUNDS} rounds: ${JSON.stringify(Object.fromEntries(seen))}`);
}

t.test('mutated MBR and EBRs: a table or SV_ERR_VOLUME_*', async (t) => {
  const path = makeMbr(tempDir(t));
  const fd = openSync(path, 'r');
  const ext = pread(fd, 0x1be + 3 * 16 + 8, 4).readUInt32LE(0);
  const ebr2 = ext + pread(fd, ext * 512 + 0x1be + 16 + 8, 4).readUInt32LE(0);
  closeSync(fd);
  await fuzz(t, path, [[0x1be, 66], [ext * 512 + 0x1be, 66], [ebr2 * 512 + 0x1be, 66]], 0x12a1, false);
});

t.test('mutated GPT headers and entries: a table or SV_ERR_VOLUME_*', async (t) => {
  const path = makeGpt(tempDir(t));
  await fuzz(t, path, [[0, 512], [512, 512], [1024, 1024], [DISK_BYTES - 512, 512], [DISK_BYTES - 33 * 512, 1024]], 0x12a2, true);
});

t.test('an EBR chain that loops back is SV_ERR_VOLUME_EBR_LOOP', async (t) => {
  const path = makeMbr(tempDir(t));
  const fd = openSync(path, 'r+');
  const ext = pread(fd, 0x1be + 3 * 16 + 8, 4).readUInt32LE(0);
  const rel2 = pread(fd, ext * 512 + 0x1be + 16 + 8, 4).readUInt32LE(0);
  const rel3 = pread(fd, (ext + rel2) * 512 + 0x1be + 16 + 8, 4).readUInt32LE(0);
  const link3 = (ext + rel3) * 512 + 0x1be + 16;
  const entry = Buffer.alloc(16);
  entry[4] = 0x05;
  entry.writeUInt32LE(rel2, 8);
  entry.writeUInt32LE(1, 12);
  writeSync(fd, entry, 0, 16, link3); // the third EBR links back to the second
  closeSync(fd);
  const disk = await openDisk(path);
  const err = await readPartitions(disk).then(() => undefined, (e: unknown) => e);
  await disk.close();
  t.ok(hasCode(err, 'SV_ERR_VOLUME_EBR_LOOP'), String(err));
  t.match((err as Error).message, /EBR chain at offset \d+: expected a new EBR, found one already read/u);
});
