/**
 * VHDX reader against images made by other software (Hyper-V, Windows 10, Disk2vhd): the decoded virtual disk
 * must hash to the content SHA-256 the fixtures README gives. And the libvhdi structure fragments must parse
 * with plausible values through the structure parsers.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { crc32c } from '../../src/formats/crc32c.js';
import { openDisk } from '../../src/formats/open.js';
import { readGuid } from '../../src/formats/vhdx/guid.js';
import {
  GUIDS, METADATA_TABLE_ENTRY, PARENT_LOCATOR_ENTRY, PARENT_LOCATOR_HEADER, REGION_TABLE_ENTRY, REGION_TABLE_HEADER,
} from '../../src/formats/vhdx/layout.js';
import { parseFileIdentifier, parseHeader, parseMetadataTable, parseRegionTable } from '../../src/formats/vhdx/structs.js';
import { FIXTURE_IMAGES, tempDir } from '../helpers/env.js';
import { fixture, sha256Of } from './vhdx-helpers.js';

const FIXTURES: { name: string; size: number; sha256: string; variant: string; blockSize: number; pss: number }[] = [
  { name: 'iotest-dynamic-1G.vhdx', size: 1073741824, sha256: 'd3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478', variant: 'dynamic', blockSize: 32 << 20, pss: 4096 },
  { name: 'test-disk2vhd.vhdx', size: 268435456, sha256: '96d964042be9b58dda1725567abfb0cf9fd8380e2118754afa979c2ad445938a', variant: 'dynamic', blockSize: 2 << 20, pss: 512 },
  { name: 'win10-fixed.vhdx', size: 10485760, sha256: 'bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62', variant: 'fixed', blockSize: 2 << 20, pss: 4096 },
  { name: 'win10-dynamic.vhdx', size: 10485760, sha256: '8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac', variant: 'dynamic', blockSize: 32 << 20, pss: 4096 },
];

t.test('crc32c check value', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
});

t.test('fixtures read to their content sha256', async (t) => {
  const dir = tempDir(t);
  for (const f of FIXTURES) {
    const path = await fixture(dir, f.name);
    const img = await openDisk(path);
    t.teardown(() => img.close());
    t.equal(img.info.format, 'vhdx', f.name);
    t.equal(img.info.virtualSize, f.size, `${f.name} size`);
    t.equal(img.info.variant, f.variant, `${f.name} variant`);
    t.equal(img.info.blockSize, f.blockSize, `${f.name} block size`);
    t.equal(img.info.logicalSectorSize, 512, `${f.name} logical sector`);
    t.equal(img.info.physicalSectorSize, f.pss, `${f.name} physical sector`);
    t.equal(await sha256Of(img), f.sha256, `${f.name} content`);
    const ext = await img.extents();
    t.equal(ext.reduce((n, e) => n + e.length, 0), f.size, `${f.name} extents cover the disk`);
  }
});

t.test('iotest image: states and extents as Hyper-V wrote them', async (t) => {
  const dir = tempDir(t);
  const img = await openDisk(await fixture(dir, 'iotest-dynamic-1G.vhdx'));
  t.teardown(() => img.close());
  t.same(img.info.extra.blockStates, { ZERO: 29, FULLY_PRESENT: 3 });
  const ext = await img.extents();
  t.same(ext, [{ offset: 0, length: 96 << 20, kind: 'data' }, { offset: 96 << 20, length: 1024 - 96 << 20, kind: 'zero' }]);
  const a = await img.read((33 << 20) - 2, 4);
  t.same([...a], [0xa5, 0xa5, 0x96, 0x96]);
});

t.test('libvhdi fragments parse with plausible values', async (t) => {
  const frag = (n: string): Promise<Buffer> => readFile(join(FIXTURE_IMAGES, 'fragments', n));
  const path = 'fragments';
  const id = parseFileIdentifier(await frag('file_identifier.1'), { path, offset: 0 });
  t.match(id.creator, /Microsoft Windows/);

  const h = parseHeader(await frag('image_header.1'), { path, offset: 65536 });
  t.ok(h.ok, h.ok ? 'header valid' : h.problem.message);
  if (h.ok) {
    t.equal(h.value.version, 1);
    t.equal(h.value.logOffset % (1 << 20), 0);
    t.ok(h.value.logLength >= 1 << 20);
    t.ok(h.value.sequenceNumber > 0n);
  }

  const rth = REGION_TABLE_HEADER.decode(await frag('region_table_header.1'));
  t.equal(rth.signature, 'regi');
  t.ok(rth.entryCount >= 2 && rth.entryCount <= 2047);
  const rte = REGION_TABLE_ENTRY.decode(await frag('region_table_entry.1'));
  t.ok([GUIDS.batRegion, GUIDS.metadataRegion].includes(readGuid(rte.guid) as typeof GUIDS.batRegion));
  t.equal(rte.fileOffset % (1 << 20), 0);
  // region_table.1 holds the header and its entries (80 bytes); the rest of a 64 KiB table is zero, so the CRC
  // over the zero-padded table must match.
  const rt = Buffer.alloc(65536);
  (await frag('region_table.1')).copy(rt);
  const parsed = parseRegionTable(rt, { path, offset: 196608 });
  t.ok(parsed.ok, parsed.ok ? 'region table valid' : parsed.problem.message);
  if (parsed.ok) {
    t.same(parsed.value.map((r) => r.guid).sort(), [GUIDS.batRegion, GUIDS.metadataRegion].sort());
    t.ok(parsed.value.every((r) => r.required && r.fileOffset >= 1 << 20 && r.length >= 1 << 20));
  }
  rt[40] ^= 1;
  const broken = parseRegionTable(rt, { path, offset: 196608 });
  t.equal(broken.ok ? 'ok' : broken.problem.code, 'SV_ERR_VHDX_CHECKSUM', 'one flipped bit breaks the CRC');

  const mth = await frag('metadata_table_header.1');
  const table = Buffer.alloc(65536);
  mth.copy(table);
  const count = table.readUInt16LE(10);
  t.equal(count, 5);
  const mte = METADATA_TABLE_ENTRY.decode(await frag('metadata_table_entry.1'));
  t.equal(readGuid(mte.itemId), GUIDS.fileParameters);
  t.equal(mte.length, 8);
  t.ok(mte.offset >= 65536);
  // A table of five copies of that entry is refused as duplicates; one copy parses.
  table.writeUInt16LE(1, 10);
  (await frag('metadata_table_entry.1')).copy(table, 32);
  const entries = parseMetadataTable(table, { path, offset: 0 }, 1 << 20);
  t.equal(entries.length, 1);
  t.equal(entries[0]!.isRequired, true);

  const plh = PARENT_LOCATOR_HEADER.decode(await frag('parent_locator_header.1'));
  t.equal(readGuid(plh.locatorType), GUIDS.vhdxParentLocatorType);
  t.equal(plh.keyValueCount, 5);
  const ple = PARENT_LOCATOR_ENTRY.decode(await frag('parent_locator_entry.1'));
  t.ok(ple.keyOffset >= 20 + 5 * 12, 'key after the entry table');
  t.equal(ple.keyLength % 2, 0);
  t.equal(ple.valueLength % 2, 0);
  t.ok(ple.valueOffset >= ple.keyOffset + ple.keyLength);
});
