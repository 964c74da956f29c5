/**
 * VHD structures one at a time: the libvhdi structure dumps in fixtures/images/fragments (a Virtual PC
 * differencing footer and its dynamic disk header) decode with valid checksums; the size rule and the
 * specification's CHS algorithm; our encoder round-trips through the decoder.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { U64_ALL_ONES, uuidText } from '../../src/formats/struct.js';
import { encodeDynHeader, encodeFooter } from '../../src/formats/vhd/build.js';
import { parentUnicodeName, virtualSizeOf } from '../../src/formats/vhd/meta.js';
import { DYN_HEADER, FOOTER, LOCATOR, bitmapBytes, chsGeometry, vhdChecksum } from '../../src/formats/vhd/structs.js';
import { FIXTURE_IMAGES } from '../helpers/env.js';

const FRAGMENTS = join(FIXTURE_IMAGES, 'fragments');

t.test('libvhdi footer fragment', async (t) => {
  const buf = readFileSync(join(FRAGMENTS, 'file_footer.1'));
  const f = FOOTER.decode(buf);
  t.equal(f.cookie, 'conectix');
  t.equal(f.checksum, vhdChecksum(buf, 64), 'checksum valid');
  t.equal(f.diskType, 4, 'differencing');
  t.equal(f.dataOffset, 512);
  t.equal(f.creatorApplication, 'vpc ');
  t.equal(f.currentSize, 512 << 20);
  t.same([f.cylinders, f.heads, f.sectorsPerTrack], [1040, 16, 63]);
  t.same(virtualSizeOf(f), { virtualSize: 1040 * 16 * 63 * 512, rule: 'CHS geometry', why: 'creator "vpc " sizes by CHS geometry 1040/16/63' });
  t.equal(uuidText(f.uniqueId), '40d56d36-9ab8-4fe4-a31a-121fe2bf15eb');
});

t.test('libvhdi dynamic disk header fragment', async (t) => {
  const buf = readFileSync(join(FRAGMENTS, 'dynamic_disk_header.1'));
  const h = DYN_HEADER.decode(buf);
  t.equal(h.cookie, 'cxsparse');
  t.equal(h.checksum, vhdChecksum(buf, 36), 'checksum valid');
  t.equal(h.dataOffset, U64_ALL_ONES);
  t.equal(h.tableOffset, 0x600);
  t.equal(h.maxTableEntries, 256);
  t.equal(h.blockSize, 2 << 20);
  t.type(parentUnicodeName(h), 'string');
  const first = LOCATOR.decode(h.locators, 0);
  t.type(first.platformCode, 'string');
});

t.test('size rule by creator; saturated and zero geometry mean current size', async (t) => {
  const base = FOOTER.decode(encodeFooter({ diskType: 3, size: 100 << 20, dataOffset: 512, uniqueId: Buffer.alloc(16), timeStamp: 0 }));
  t.equal(virtualSizeOf(base).rule, 'current size', 'our own writer says "win "');
  for (const creator of ['vpc ', 'qemu', 'xyzw']) t.equal(virtualSizeOf({ ...base, creatorApplication: creator }).rule, 'CHS geometry', creator);
  for (const creator of ['win ', 'qem2', 'd2v ', 'd2v\0', 'CTXS', 'tap\0']) t.equal(virtualSizeOf({ ...base, creatorApplication: creator }).rule, 'current size', JSON.stringify(creator));
  t.equal(virtualSizeOf({ ...base, creatorApplication: 'vpc ', cylinders: 65535, heads: 16, sectorsPerTrack: 255 }).rule, 'current size');
  t.equal(virtualSizeOf({ ...base, creatorApplication: 'vpc ', cylinders: 0 }).rule, 'current size');
});

t.test('CHS geometry per the specification', async (t) => {
  t.same(chsGeometry(100 << 20), { cylinders: 1003, heads: 12, sectorsPerTrack: 17 });
  t.equal(chsGeometry(127 * 1024 ** 3).sectorsPerTrack, 255, 'large sizes use 255 sectors per track');
  t.same(chsGeometry(3 * 1024 ** 4), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 }, 'saturates');
  t.equal(bitmapBytes(2 << 20), 512);
  t.equal(bitmapBytes(512 << 10), 512, 'padded to a sector');
  t.equal(bitmapBytes(32 << 20), 8192);
});

t.test('encoders round-trip through the decoders with valid checksums', async (t) => {
  const id = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const f = encodeFooter({ diskType: 4, size: 5 << 30, dataOffset: 512, uniqueId: id, timeStamp: 123 });
  t.equal(FOOTER.decode(f).checksum, vhdChecksum(f, 64));
  t.equal(uuidText(FOOTER.decode(f).uniqueId), '00112233-4455-6677-8899-aabbccddeeff');
  const h = encodeDynHeader({ tableOffset: 1536, maxTableEntries: 10, blockSize: 2 << 20, parentUniqueId: id, parentTimeStamp: 7, parentName: 'père.vhd',
    locators: [{ platform: 'W2ru', data: Buffer.from('.\\père.vhd', 'utf16le'), offset: 4096, space: 512 }] });
  const d = DYN_HEADER.decode(h);
  t.equal(d.checksum, vhdChecksum(h, 36));
  t.equal(d.dataOffset, U64_ALL_ONES, 'all-ones data offset survives encode/decode');
  t.equal(h.readBigUInt64BE(8), 0xffffffffffffffffn);
  t.equal(parentUnicodeName(d), 'père.vhd', 'UTF-16BE parent name');
  t.match(LOCATOR.decode(d.locators, 0), { platformCode: 'W2ru', platformDataOffset: 4096, platformDataLength: 20, platformDataSpace: 512 });
});
