/**
 * Seeded fuzz of the NTFS reader over a real ntfs-3g image held in memory: bytes of the boot sector, MFT
 * records (headers, attributes, runlists, attribute lists, resident index roots), INDX blocks and LZNT1
 * compressed clusters are mutated, then the volume is opened, listed and read; every outcome must be a
 * result or a catalogued SV_ERR_FS_* / SV_ERR_VOLUME_* error (the volume reader throws a plain Error on any
 * read outside the volume or above 64 MiB, so an unchecked on-disk number fails the test). Also the runlist
 * decoder and the LZNT1 decoder alone, and three crafted cycles: runs mapping the same clusters twice, an
 * attribute list naming another file's record, an index node that is its own child.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { isSvError } from '../../src/errors/index.js';
import { applyFixups } from '../../src/volumes/fs/ntfs/fixups.js';
import { NtfsFileSystem } from '../../src/volumes/fs/ntfs/index.js';
import { lznt1Decompress } from '../../src/volumes/fs/ntfs/lznt1.js';
import { checkNoOverlap, decodeRuns } from '../../src/volumes/fs/ntfs/runlist.js';
import {
  AT, ATTR_END, ATTR_HEADER, ATTRIBUTE_LIST_ENTRY, INDEX_BLOCK_HEADER_AT, INDEX_ENTRY, INDEX_HEADER, NON_RESIDENT_PART,
  RECORD_HEADER,
} from '../../src/volumes/fs/ntfs/structs.js';
import { hasCode } from '../../src/errors/index.js';
import { tempDir } from '../helpers/env.js';
import { rng } from '../formats/vhd-fixture-helpers.js';
import { firstRun, makeSmallNtfs } from './ntfs-images.js';
import { bufferVolume } from './volume-readers.js';

const ROUNDS = 200;
const RECORD = 1024;
const CLUSTER = 4096;

const small = makeSmallNtfs(tempDir(t, 'sv-ntfs-fuzz-'));
const pristine = readFileSync(small.path);
const intact = await NtfsFileSystem.open(bufferVolume(pristine), { name: 'fuzz' });
const ids = new Map<string, number>();
for (const f of [...small.files, '/dir']) ids.set(f, (await intact.stat(f)).id);

/** Offsets of MFT records (by number) and INDX blocks in the image. */
const records = new Map<number, number>();
const indxBlocks: number[] = [];
for (let at = 0; at + RECORD <= pristine.length; at += RECORD) {
  const magic = pristine.toString('latin1', at, at + 4);
  if (magic === 'FILE' && !records.has(pristine.readUInt32LE(at + 0x2c))) records.set(pristine.readUInt32LE(at + 0x2c), at);
  if (magic === 'INDX' && at % CLUSTER === 0) indxBlocks.push(at);
}
const packed = firstRun(small.path, '/packed/text.txt');

const code = (err: unknown): string => {
  if (isSvError(err) && /^SV_ERR_(FS|VOLUME)_/u.test(err.code)) return err.code;
  throw err;
};

/** Open, list, stat, read everything; each step's outcome counted. */
async function exercise(buf: Buffer, seen: Map<string, number>): Promise<void> {
  const note = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
  let fs: NtfsFileSystem;
  try {
    fs = await NtfsFileSystem.open(bufferVolume(buf), { name: 'fuzz' });
  } catch (err) {
    note(`open:${code(err)}`);
    return;
  }
  const steps: Array<() => Promise<unknown>> = [
    ...small.dirs.map((d) => () => fs.list(d)),
    ...small.files.map((f) => async () => {
      const h = await fs.open(f);
      await h.read(0, Math.min(h.size, 256 << 10));
      await fs.streams(f);
    }),
    () => fs.stat('/dir/FILE-NUMBER-0299.TXT'),
  ];
  for (const step of steps) {
    try {
      await step();
      note('ok');
    } catch (err) {
      note(code(err));
    }
  }
}

async function fuzz(regions: Array<[number, number]>, seed: number): Promise<Record<string, number>> {
  const random = rng(seed);
  const buf = Buffer.from(pristine);
  const seen = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    const flips = 1 + Math.floor(random() * 4);
    const touched: number[] = [];
    for (let i = 0; i < flips; i++) {
      const [at, len] = regions[Math.floor(random() * regions.length)]!;
      const pos = at + Math.floor(random() * len);
      buf[pos] = Math.floor(random() * 256);
      touched.push(pos);
    }
    await exercise(buf, seen);
    for (const pos of touched) buf[pos] = pristine[pos]!;
  }
  return Object.fromEntries(seen);
}

t.test('mutated boot sector', async (t) => {
  t.pass(JSON.stringify(await fuzz([[0, 512]], 0x4e01)));
});

t.test('mutated MFT records (system and user files: headers, attributes, runlists, attribute lists, index roots)', async (t) => {
  const wanted = [0, 3, 5, 10, ...[...ids.values()]];
  const regions = wanted.map((n) => records.get(n)).filter((at): at is number => at !== undefined).map((at): [number, number] => [at, RECORD]);
  t.ok(regions.length >= 8, `${regions.length} records`);
  t.pass(JSON.stringify(await fuzz(regions, 0x4e02)));
});

t.test('mutated INDX blocks', async (t) => {
  t.ok(indxBlocks.length >= 2, `${indxBlocks.length} index blocks`);
  t.pass(JSON.stringify(await fuzz(indxBlocks.map((at): [number, number] => [at, CLUSTER]), 0x4e03)));
});

t.test('mutated LZNT1 clusters, through the file system and alone', async (t) => {
  t.ok(packed.clusters < 16, `the first unit is compressed into ${packed.clusters} clusters`);
  const region: [number, number] = [packed.lcn * CLUSTER, packed.clusters * CLUSTER];
  t.pass(JSON.stringify(await fuzz([region], 0x4e04)));
  const random = rng(0x4e05);
  const seen = new Map<string, number>();
  const unit = pristine.subarray(region[0], region[0] + region[1]);
  for (let round = 0; round < 2000; round++) {
    const src = Buffer.from(unit);
    for (let i = 0, n = 1 + Math.floor(random() * 8); i < n; i++) src[Math.floor(random() * Math.min(src.length, 600))] = Math.floor(random() * 256);
    try {
      lznt1Decompress(src, Buffer.alloc(16 * CLUSTER), 'fuzz unit');
      seen.set('ok', (seen.get('ok') ?? 0) + 1);
    } catch (err) {
      const c = code(err);
      seen.set(c, (seen.get(c) ?? 0) + 1);
    }
  }
  t.ok(seen.has('SV_ERR_FS_NTFS_BAD_COMPRESSION'), JSON.stringify(Object.fromEntries(seen)));
});

/** Encode runs (lcn null = sparse) as mapping pairs, smallest signed field widths. */
function encodeRuns(runs: Array<{ lcn: number | null; length: number }>): Buffer {
  const out: number[] = [];
  const field = (v: number): number[] => {
    const bytes: number[] = [];
    let x = BigInt(v);
    do {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
    } while (!(x === 0n && (bytes[bytes.length - 1]! & 0x80) === 0) && !(x === -1n && (bytes[bytes.length - 1]! & 0x80) !== 0));
    return bytes;
  };
  let prev = 0;
  for (const r of runs) {
    const len = field(r.length);
    const off = r.lcn === null ? [] : field(r.lcn - prev);
    if (r.lcn !== null) prev = r.lcn;
    out.push((off.length << 4) | len.length, ...len, ...off);
  }
  return Buffer.from([...out, 0]);
}

t.test('runlists (valid ones encoded, then mutated): runs, SV_ERR_FS_NTFS_BAD_RUNLIST or _LOOP', async (t) => {
  const random = rng(0x4e06);
  const seen = new Map<string, number>();
  for (let round = 0; round < 5000; round++) {
    const runs = Array.from({ length: 1 + Math.floor(random() * 6) }, () => ({
      lcn: random() < 0.2 ? null : Math.floor(random() * 4000), length: 1 + Math.floor(random() * 90),
    }));
    const clusters = runs.reduce((n, r) => n + r.length, 0);
    const bytes = encodeRuns(runs);
    if (random() < 0.7) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    try {
      const decoded = decodeRuns(bytes, 0, bytes.length, 0, clusters - 1, { name: 'fuzz', structure: 'runs', at: 0, clusters: 4096 });
      checkNoOverlap(decoded, 'fuzz', 'runs');
      seen.set('ok', (seen.get('ok') ?? 0) + 1);
    } catch (err) {
      const c = code(err);
      seen.set(c, (seen.get(c) ?? 0) + 1);
    }
  }
  t.ok(seen.has('ok') && seen.has('SV_ERR_FS_NTFS_BAD_RUNLIST') && seen.has('SV_ERR_FS_NTFS_LOOP'), JSON.stringify(Object.fromEntries(seen)));
});

/** A record's bytes with fixups applied (to find offsets), and a setter writing into the raw image. */
function recordView(img: Buffer, number: number): { at: number; view: Buffer; attr(type: number): number } {
  const at = records.get(number)!;
  const view = Buffer.from(img.subarray(at, at + RECORD));
  applyFixups(view, { name: 'test', code: 'SV_ERR_FS_NTFS_BAD_RECORD', structure: 'test', at });
  return {
    at, view,
    attr(type: number): number {
      for (let p = RECORD_HEADER.decode(view).attrsOffset; view.readUInt32LE(p) !== ATTR_END; p += view.readUInt32LE(p + 4)) {
        const a = ATTR_HEADER.decode(view, p);
        if (a.type === type && a.nameLength === 0) return p;
      }
      throw new Error(`record ${number} has no attribute 0x${type.toString(16)}`);
    },
  };
}

/** Write bytes into the raw image at `at`, refusing to touch an update-sequence slot. */
function patch(img: Buffer, at: number, bytes: number[]): void {
  bytes.forEach((b, i) => {
    if ((at + i) % 512 >= 510) throw new Error(`patch at ${at + i} hits an update-sequence slot`);
    img[at + i] = b;
  });
}

t.test('crafted: two runs mapping the same clusters is SV_ERR_FS_NTFS_LOOP', async (t) => {
  const img = Buffer.from(pristine);
  const r = recordView(img, ids.get('/big.bin')!);
  const p = r.attr(AT.DATA);
  const n = NON_RESIDENT_PART.decode(r.view, p);
  const half = (n.lastVcn + 1) / 2;
  t.ok(Number.isInteger(half) && half < 128, `${n.lastVcn + 1} clusters split in two runs`);
  const first = 200; // any cluster inside the volume
  patch(img, r.at + p + n.runsOffset, [0x21, half, first & 0xff, first >> 8, 0x11, half, 0x00, 0x00]);
  const fs = await NtfsFileSystem.open(bufferVolume(img), { name: 'crafted' });
  const err = await fs.open('/big.bin').then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_FS_NTFS_LOOP'), String(err));
  t.match((err as Error).message, /both map cluster/u);
});

t.test('crafted: an attribute list naming another file\'s record is SV_ERR_FS_NTFS_LOOP', async (t) => {
  const img = Buffer.from(pristine);
  const base = ids.get('/linked.txt')!;
  const r = recordView(img, base);
  const p = r.attr(AT.ATTRIBUTE_LIST);
  // 31 names: the list is too long for the record and lives in clusters of its own.
  t.equal(ATTR_HEADER.decode(r.view, p).nonResident, 1, 'the attribute list is non-resident');
  const n = NON_RESIDENT_PART.decode(r.view, p);
  const runs = decodeRuns(r.view, p + n.runsOffset, p + ATTR_HEADER.decode(r.view, p).length, 0, n.lastVcn, { name: 'test', structure: 'list', at: 0, clusters: 4096 });
  const value = runs[0]!.lcn! * CLUSTER;
  let e = value;
  while (e < value + n.dataSize && img.readUInt32LE(e + 16) === base) e += ATTRIBUTE_LIST_ENTRY.decode(img, e).length;
  t.ok(e < value + n.dataSize, 'an entry in an extension record');
  const other = ids.get('/small.txt')!;
  img.set(u32(other), e + 16);
  const fs = await NtfsFileSystem.open(bufferVolume(img), { name: 'crafted' });
  const err = await fs.stat('/linked.txt').then(() => undefined, (x: unknown) => x);
  t.ok(hasCode(err, 'SV_ERR_FS_NTFS_LOOP'), String(err));
});

t.test('crafted: an index block that is its own sub-node is SV_ERR_FS_NTFS_LOOP', async (t) => {
  const img = Buffer.from(pristine);
  let done = false;
  for (const at of indxBlocks) {
    const view = Buffer.from(img.subarray(at, at + CLUSTER));
    applyFixups(view, { name: 'test', code: 'SV_ERR_FS_NTFS_BAD_INDEX', structure: 'test', at });
    const h = INDEX_HEADER.decode(view, INDEX_BLOCK_HEADER_AT);
    const last = INDEX_BLOCK_HEADER_AT + h.entriesEnd - INDEX_ENTRY.size;
    const e = INDEX_ENTRY.decode(view, last);
    const firstKeyParent = view.readUInt32LE(INDEX_BLOCK_HEADER_AT + h.entriesOffset + INDEX_ENTRY.size);
    if (firstKeyParent !== ids.get('/dir') || e.flags !== 2 || e.length !== 16 || h.entriesEnd + 8 > h.allocated) continue;
    const vcn = view.readUInt32LE(16);
    try {
      patch(img, at + INDEX_BLOCK_HEADER_AT + 4, [...u32(h.entriesEnd + 8)]);
      patch(img, at + last + 8, [24, 0]);
      patch(img, at + last + 12, [3, 0]);
      patch(img, at + last + 16, [...u32(vcn), 0, 0, 0, 0]);
    } catch {
      img.set(pristine.subarray(at, at + CLUSTER), at);
      continue;
    }
    done = true;
    break;
  }
  t.ok(done, 'a leaf block rewritten to point at itself');
  const fs = await NtfsFileSystem.open(bufferVolume(img), { name: 'crafted' });
  const err = await fs.list('/dir').then(() => undefined, (x: unknown) => x);
  t.ok(hasCode(err, 'SV_ERR_FS_NTFS_LOOP'), String(err));
  t.match((err as Error).message, /reaches this node twice/u);
});

function u32(n: number): number[] {
  return [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
}
