/**
 * Bad VHDX input: every case is a catalogued error whose message and details name the file, the structure and
 * the offset, with expected vs found; nothing hangs and nothing allocates in proportion to a claimed size.
 * Images are our writer's (known layout: log 1 MiB, metadata 2 MiB, BAT 3 MiB, blocks from 4 MiB) or the
 * Hyper-V fixture, edited in place.
 */
import { copyFile, open, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { SvError } from '../../src/errors/index.js';
import { crc32cWithZeroedField } from '../../src/formats/crc32c.js';
import { openDisk } from '../../src/formats/open.js';
import type { BlockSource } from '../../src/formats/types.js';
import { writeDisk } from '../../src/formats/write.js';
import { buildHeader, buildParentLocator, writeBatEntry } from '../../src/formats/vhdx/build.js';
import { HEADER_OFFSETS, PAYLOAD_BLOCK_FULLY_PRESENT } from '../../src/formats/vhdx/layout.js';
import { parseHeader } from '../../src/formats/vhdx/structs.js';
import { tempDir } from '../helpers/env.js';
import { fixture } from './vhdx-helpers.js';

const MiB = 1 << 20;
const META = 2 * MiB;
const ITEMS = META + 64 * 1024; // file parameters, virtual size (+8), page 83 (+16), logical (+32), physical (+40), parent locator (+48)
const BAT = 3 * MiB;

async function goodImage(dir: string, name = 'good.vhdx'): Promise<string> {
  const path = join(dir, name);
  const src: BlockSource = {
    virtualSize: 8 * MiB,
    blockSize: MiB,
    async *blocks() {
      for (const i of [0, 2, 5]) yield { index: i, data: Buffer.alloc(MiB, i + 1) };
    },
  };
  await writeDisk('vhdx', src, path, { blockSize: MiB });
  return path;
}

async function patch(path: string, offset: number, bytes: Buffer): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, offset);
  } finally {
    await fh.close();
  }
}

/** Change header bytes and recompute its CRC-32C. */
async function patchHeader(path: string, headerOffset: number, at: number, bytes: Buffer): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const h = Buffer.alloc(4096);
    await fh.read(h, 0, 4096, headerOffset);
    bytes.copy(h, at);
    h.writeUInt32LE(crc32cWithZeroedField(h, 4, 4), 4);
    await fh.write(h, 0, 4096, headerOffset);
  } finally {
    await fh.close();
  }
}

const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };

/** Rewrite both headers with `change` applied (CRCs recomputed). */
async function rewriteHeaders(path: string, change: (h: Parameters<typeof buildHeader>[0]) => Parameters<typeof buildHeader>[0]): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (const off of HEADER_OFFSETS) {
      const cur = Buffer.alloc(4096);
      await fh.read(cur, 0, 4096, off);
      const h = parseHeader(cur, { path, offset: off });
      if (!h.ok) throw h.problem;
      const nh = buildHeader(change(h.value));
      await fh.write(nh, 0, nh.length, off);
    }
  } finally {
    await fh.close();
  }
}

interface Case {
  name: string;
  edit: (path: string) => Promise<void>;
  code: string;
  /** A regular expression the message must match (besides the path). */
  says?: RegExp;
  /** The structure offset the error must name. */
  offset?: number;
  /** Open with this format forced (no detection). */
  format?: 'vhdx';
}

const CASES: Case[] = [
  { name: 'truncated to 100 bytes', edit: (p) => truncate(p, 100), code: 'SV_ERR_FORMAT_TRUNCATED', says: /header section/ },
  { name: 'truncated inside the region tables', edit: (p) => truncate(p, 200 * 1024), code: 'SV_ERR_FORMAT_TRUNCATED' },
  { name: 'truncated before the metadata region', edit: (p) => truncate(p, Math.floor(1.5 * MiB)), code: 'SV_ERR_FORMAT_TRUNCATED', says: /region/ },
  { name: 'truncated inside the payload', edit: (p) => truncate(p, 5 * MiB + 4096), code: 'SV_ERR_VHDX_BAT', says: /past the end of the file/ },
  { name: 'file identifier signature (opened as VHDX)', edit: (p) => patch(p, 4, Buffer.from('XX')), code: 'SV_ERR_VHDX_SIGNATURE', says: /"vhdxfile"/, offset: 0, format: 'vhdx' },
  { name: 'both header CRCs', edit: async (p) => { await patch(p, HEADER_OFFSETS[0] + 100, Buffer.from([1])); await patch(p, HEADER_OFFSETS[1] + 100, Buffer.from([1])); }, code: 'SV_ERR_VHDX_CHECKSUM', says: /checksum/, offset: HEADER_OFFSETS[0] + 4 },
  { name: 'both header signatures', edit: async (p) => { await patch(p, HEADER_OFFSETS[0], Buffer.from('hexd')); await patch(p, HEADER_OFFSETS[1], Buffer.from('hexd')); }, code: 'SV_ERR_VHDX_SIGNATURE', says: /no valid VHDX header.*"head"/, offset: HEADER_OFFSETS[0] },
  { name: 'one header signature, the other CRC', edit: async (p) => { await patch(p, HEADER_OFFSETS[0], Buffer.from('hexd')); await patch(p, HEADER_OFFSETS[1] + 100, Buffer.from([1])); }, code: 'SV_ERR_VHDX_NO_VALID_HEADER', says: /signature.*checksum/ },
  { name: 'header version 2 (valid CRC)', edit: async (p) => { for (const off of HEADER_OFFSETS) await patchHeader(p, off, 66, Buffer.from([2])); }, code: 'SV_ERR_VHDX_UNSUPPORTED', says: /version/, offset: HEADER_OFFSETS[0] + 66 },
  { name: 'both region table CRCs', edit: async (p) => { await patch(p, 192 * 1024 + 500, Buffer.from([1])); await patch(p, 256 * 1024 + 500, Buffer.from([1])); }, code: 'SV_ERR_VHDX_CHECKSUM', says: /region table/, offset: 192 * 1024 + 4 },
  { name: 'metadata table signature', edit: (p) => patch(p, META, Buffer.from('metadatX')), code: 'SV_ERR_VHDX_SIGNATURE', says: /"metadata"/, offset: META },
  { name: 'block size 3 MiB', edit: (p) => patch(p, ITEMS, u32(3 * MiB)), code: 'SV_ERR_VHDX_METADATA', says: /blockSize/, offset: ITEMS },
  { name: 'logical sector 1024', edit: (p) => patch(p, ITEMS + 32, u32(1024)), code: 'SV_ERR_VHDX_METADATA', says: /512 or 4096/ },
  { name: 'absurd virtual size 2^62', edit: (p) => patch(p, ITEMS + 8, u64(1n << 62n)), code: 'SV_ERR_VHDX_METADATA', says: /virtual disk size/ },
  { name: '64 TiB virtual size with a 1 MiB BAT region', edit: (p) => patch(p, ITEMS + 8, u64(64n << 40n)), code: 'SV_ERR_VHDX_BAT', says: /BAT region length/ },
  { name: 'metadata entry past the region', edit: (p) => patch(p, META + 32 + 16, u32(0xfffff000)), code: 'SV_ERR_VHDX_METADATA', offset: META + 32 + 16 },
  { name: 'unknown required metadata item', edit: (p) => patch(p, META + 32, Buffer.alloc(16, 0x42)), code: 'SV_ERR_VHDX_UNSUPPORTED', says: /required/ },
  { name: 'BAT entry past the end of the file', edit: async (p) => { const b = Buffer.alloc(8); writeBatEntry(b, 0, PAYLOAD_BLOCK_FULLY_PRESENT, 1024 * 1024 * MiB); await patch(p, BAT, b); }, code: 'SV_ERR_VHDX_BAT', says: /past the end/, offset: BAT },
  { name: 'BAT entry on the metadata region', edit: async (p) => { const b = Buffer.alloc(8); writeBatEntry(b, 0, PAYLOAD_BLOCK_FULLY_PRESENT, META); await patch(p, BAT, b); }, code: 'SV_ERR_VHDX_BAT', says: /payload block 0 at offset \d+: expected no overlap, found it overlaps the metadata region/ },
  { name: 'BAT entry in the header section', edit: async (p) => { const b = Buffer.alloc(8); writeBatEntry(b, 0, PAYLOAD_BLOCK_FULLY_PRESENT, 0); await patch(p, BAT, b); }, code: 'SV_ERR_VHDX_BAT', says: /header section/ },
  { name: 'two blocks at one offset', edit: async (p) => { const b = Buffer.alloc(8); writeBatEntry(b, 0, PAYLOAD_BLOCK_FULLY_PRESENT, 4 * MiB); await patch(p, BAT + 8, b); }, code: 'SV_ERR_VHDX_BAT', says: /payload block 1 at offset \d+: expected no overlap, found it overlaps payload block 0/ },
  { name: 'reserved BAT state 4', edit: (p) => patch(p, BAT + 8, Buffer.from([4])), code: 'SV_ERR_VHDX_BAT', says: /state/, offset: BAT + 8 },
  { name: 'PARTIALLY_PRESENT in a dynamic disk', edit: (p) => patch(p, BAT, Buffer.from([7])), code: 'SV_ERR_VHDX_BAT', says: /differencing/ },
  { name: 'LogGuid set, log empty', edit: (p) => rewriteHeaders(p, (h) => ({ ...h, logGuid: '11111111-2222-4333-8444-555555555555' })), code: 'SV_ERR_VHDX_LOG' },
  { name: 'log placed past the end of the file', edit: (p) => rewriteHeaders(p, (h) => ({ ...h, logGuid: '11111111-2222-4333-8444-555555555555', logOffset: 1024 * MiB, logLength: 255 * MiB })), code: 'SV_ERR_FORMAT_TRUNCATED', says: /log/ },
  { name: 'HasParent without a locator', edit: (p) => patch(p, ITEMS + 4, u32(2)), code: 'SV_ERR_VHDX_METADATA', says: /parent locator/ },
];

t.test('bad VHDX input gives coded errors naming file, structure and offset', async (t) => {
  const dir = tempDir(t);
  const good = await goodImage(dir);
  const ok = await openDisk(good);
  t.equal(ok.info.virtualSize, 8 * MiB, 'the unedited image opens');
  await ok.close();
  for (const [i, c] of CASES.entries()) {
    const path = join(dir, `case${i}.vhdx`);
    await copyFile(good, path);
    await c.edit(path);
    const err = await openDisk(path, c.format ? { format: c.format } : {}).then(async (img) => { await img.close(); return undefined; }, (e: unknown) => e);
    t.ok(err instanceof SvError, `${c.name}: an SvError (${String(err)})`);
    if (!(err instanceof SvError)) continue;
    t.equal(err.code, c.code, `${c.name}: ${err.message}`);
    t.match(err.message, path, `${c.name}: names the file`);
    if (c.says) t.match(err.message, c.says, `${c.name}: names the structure`);
    if (c.offset !== undefined) t.equal(err.details.offset, c.offset, `${c.name}: names the offset`);
    t.match(err.message, /offset \d+|at \d+/, `${c.name}: message gives an offset`);
  }
});

t.test('one bad copy of the header or region table is tolerated', async (t) => {
  const dir = tempDir(t);
  const good = await goodImage(dir);
  const hdr = join(dir, 'hdr.vhdx');
  await copyFile(good, hdr);
  await patch(hdr, HEADER_OFFSETS[1] + 8, Buffer.from([0x7f])); // header 2 (the current one) CRC broken
  const a = await openDisk(hdr);
  t.equal(a.info.extra.currentHeader, 1, 'falls back to header 1');
  await a.close();
  const rt = join(dir, 'rt.vhdx');
  await copyFile(good, rt);
  await patch(rt, 192 * 1024 + 20, Buffer.from([0x55]));
  const b = await openDisk(rt);
  t.equal(b.info.virtualSize, 8 * MiB, 'second region table copy used');
  await b.close();
});

t.test('bad parent locators are coded errors', async (t) => {
  const dir = tempDir(t);
  await goodImage(dir, 'parent.vhdx');
  const child = join(dir, 'child.vhdx');
  await writeDisk('vhdx', { virtualSize: 8 * MiB, blockSize: MiB, async *blocks() { yield { index: 1, data: Buffer.alloc(MiB, 9) }; } }, child,
    { variant: 'differencing', parentPath: join(dir, 'parent.vhdx'), blockSize: MiB });
  const img = await openDisk(child);
  t.equal(img.info.parent?.path, join(dir, 'parent.vhdx'));
  await img.close();
  const locatorAt = ITEMS + 48;
  const cases: [string, Buffer, string][] = [
    ['no parent_linkage', buildParentLocator([['relative_path', 'parent.vhdx']]), 'SV_ERR_VHDX_PARENT_LOCATOR'],
    ['linkage not a GUID', buildParentLocator([['parent_linkage', 'nope'], ['relative_path', 'parent.vhdx']]), 'SV_ERR_VHDX_PARENT_LOCATOR'],
  ];
  for (const [name, loc, code] of cases) {
    const p = join(dir, `${name.replace(/ /g, '_')}.vhdx`);
    await copyFile(child, p);
    await patch(p, locatorAt, Buffer.concat([loc, Buffer.alloc(512)]));
    await patch(p, META + 32 + 5 * 32 + 20, u32(loc.length));
    await t.rejects(openDisk(p), { code }, name);
  }
  const huge = join(dir, 'huge.vhdx');
  await copyFile(child, huge);
  await patch(huge, locatorAt + 18, Buffer.from([0xff, 0xff]));
  await t.rejects(openDisk(huge), { code: 'SV_ERR_VHDX_PARENT_LOCATOR', message: /keyValueCount/ }, 'keyValueCount 65535');
});

t.test('Hyper-V fixture with a corrupt BAT entry', async (t) => {
  const dir = tempDir(t);
  const path = await fixture(dir, 'win10-dynamic.vhdx');
  const img = await openDisk(path);
  await img.close();
  const fh = await open(path, 'r');
  const rt = Buffer.alloc(96);
  await fh.read(rt, 0, 96, 192 * 1024);
  await fh.close();
  const batOffset = rt.readUInt32LE(16) === 0x2dc27766 ? Number(rt.readBigUInt64LE(16 + 16)) : Number(rt.readBigUInt64LE(16 + 32 + 16));
  t.ok(batOffset >= MiB, `BAT at ${batOffset}`);
  const b = Buffer.alloc(8);
  writeBatEntry(b, 0, PAYLOAD_BLOCK_FULLY_PRESENT, 4096 * MiB);
  await patch(path, batOffset, b);
  await t.rejects(openDisk(path), { code: 'SV_ERR_VHDX_BAT', message: /past the end of the file/ });
});

t.test('writer: bad options and bad sources are coded errors, and nothing is left behind', async (t) => {
  const dir = tempDir(t);
  const parentPath = await goodImage(dir, 'parent.vhdx');
  const src = (size: number, blocks: { index: number; data: Buffer | null }[], blockSize = MiB): BlockSource => ({
    virtualSize: size, blockSize, async *blocks() { yield* blocks; },
  });
  const opt = (o: Record<string, unknown>): Parameters<typeof writeDisk>[3] => o as Parameters<typeof writeDisk>[3];
  const cases: [string, BlockSource, Record<string, unknown>, string][] = [
    ['block size 3 MiB', src(8 * MiB, []), { blockSize: 3 * MiB }, 'SV_ERR_FORMAT_BAD_OPTION'],
    ['logical sector 1024', src(8 * MiB, []), { logicalSectorSize: 1024 }, 'SV_ERR_FORMAT_BAD_OPTION'],
    ['size not a sector multiple', src(8 * MiB + 100, []), {}, 'SV_ERR_FORMAT_BAD_OPTION'],
    ['size over 64 TiB', src(2 ** 47, []), {}, 'SV_ERR_FORMAT_BAD_OPTION'],
    ['differencing without a parent', src(8 * MiB, []), { variant: 'differencing' }, 'SV_ERR_FORMAT_BAD_OPTION'],
    ['differencing, parent of another size', src(16 * MiB, []), { variant: 'differencing', parentPath }, 'SV_ERR_FORMAT_BAD_OPTION'],
    ['blocks out of order', src(8 * MiB, [{ index: 2, data: null }, { index: 1, data: null }]), {}, 'SV_ERR_FORMAT_BAD_SOURCE'],
    ['block index past the end', src(8 * MiB, [{ index: 8, data: null }]), {}, 'SV_ERR_FORMAT_BAD_SOURCE'],
    ['short block', src(8 * MiB, [{ index: 0, data: Buffer.alloc(1000) }]), {}, 'SV_ERR_FORMAT_BAD_SOURCE'],
    ['source block size not a sector multiple', src(8 * MiB, [], 1000), {}, 'SV_ERR_FORMAT_BAD_SOURCE'],
  ];
  for (const [name, source, options, code] of cases) {
    const out = join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}.vhdx`);
    await t.rejects(writeDisk('vhdx', source, out, opt(options)), { code }, name);
  }
  const { readdir } = await import('node:fs/promises');
  t.same(await readdir(dir), ['parent.vhdx'], 'no output or temp file left behind');
});

t.test('a 64 TiB dynamic VHDX: small file, fast open, no allocation in proportion to the size', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'huge.vhdx');
  const size = 64 * 1024 * 1024 * MiB;
  await writeDisk('vhdx', {
    virtualSize: size, blockSize: 256 * MiB,
    async *blocks() { yield { index: 100000, data: Buffer.alloc(256 * MiB, 0x33) }; },
  }, path, { blockSize: 256 * MiB });
  const { stat } = await import('node:fs/promises');
  t.ok((await stat(path)).size < 300 * MiB, 'one 256 MiB block plus metadata');
  const img = await openDisk(path);
  t.teardown(() => img.close());
  t.equal(img.info.virtualSize, size);
  const ext = await img.extents();
  t.same(ext.map((e) => e.kind), ['unallocated', 'data', 'unallocated']);
  t.ok((await img.read(100000 * 256 * MiB - 2, 4)).equals(Buffer.from([0, 0, 0x33, 0x33])));
  t.ok((await img.read(size - 4096, 4096)).every((b) => b === 0), 'the end of the disk');
});
