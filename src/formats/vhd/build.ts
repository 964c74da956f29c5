/**
 * Encoding VHD metadata for the writers: footer, dynamic disk header, parent locator entries, checksums.
 * Written images say creator "win " (sized by the footer's current size, as Hyper-V does), so every reader
 * (Hyper-V, qemu, VirtualBox, ours) agrees on the size even when it is not a whole CHS geometry.
 */
import { randomBytes } from 'node:crypto';
import { U64_ALL_ONES } from '../struct.js';
import {
  DYN_COOKIE, DYN_HEADER, DYN_HEADER_CHECKSUM_OFFSET, FEATURE_RESERVED, FOOTER, FOOTER_CHECKSUM_OFFSET, FOOTER_COOKIE,
  FORMAT_VERSION, HEADER_VERSION, LOCATOR, LOCATOR_ENTRY_SIZE, VHD_EPOCH, chsGeometry, vhdChecksum,
} from './structs.js';

export const WRITER_CREATOR = 'win ';
/** Creator version 10.0, host OS Windows ("Wi2k"), like Hyper-V on Windows Server 2016+. */
const WRITER_VERSION = 0x000a0000;

export function vhdNow(): number {
  return Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH);
}

export function newUniqueId(): Buffer {
  return randomBytes(16);
}

export function encodeFooter(o: { diskType: number; size: number; dataOffset: number; uniqueId: Buffer; timeStamp: number }): Buffer {
  const geo = chsGeometry(o.size);
  const buf = FOOTER.encode({
    cookie: FOOTER_COOKIE,
    features: FEATURE_RESERVED,
    formatVersion: FORMAT_VERSION,
    dataOffset: o.dataOffset,
    timeStamp: o.timeStamp,
    creatorApplication: WRITER_CREATOR,
    creatorVersion: WRITER_VERSION,
    creatorHostOs: 'Wi2k',
    originalSize: o.size,
    currentSize: o.size,
    cylinders: geo.cylinders,
    heads: geo.heads,
    sectorsPerTrack: geo.sectorsPerTrack,
    diskType: o.diskType,
    checksum: 0,
    uniqueId: o.uniqueId,
    savedState: 0,
  });
  buf.writeUInt32BE(vhdChecksum(buf, FOOTER_CHECKSUM_OFFSET), FOOTER_CHECKSUM_OFFSET);
  return buf;
}

export interface LocatorEntry {
  readonly platform: string;
  readonly data: Buffer;
  /** Absolute file offset of the locator data (sector aligned). */
  readonly offset: number;
  /** Bytes reserved for it (a multiple of 512; stored in bytes, as Hyper-V and Virtual PC do). */
  readonly space: number;
}

export function encodeDynHeader(o: {
  tableOffset: number; maxTableEntries: number; blockSize: number;
  parentUniqueId?: Buffer; parentTimeStamp?: number; parentName?: string; locators?: readonly LocatorEntry[];
}): Buffer {
  const name = Buffer.from(o.parentName ?? '', 'utf16le');
  name.swap16(); // the header's parent name is UTF-16 big-endian
  const locators = Buffer.alloc(8 * LOCATOR_ENTRY_SIZE);
  (o.locators ?? []).slice(0, 8).forEach((l, i) => {
    LOCATOR.encode({ platformCode: l.platform, platformDataSpace: l.space, platformDataLength: l.data.length, platformDataOffset: l.offset }, locators, i * LOCATOR_ENTRY_SIZE);
  });
  const buf = DYN_HEADER.encode({
    cookie: DYN_COOKIE,
    dataOffset: U64_ALL_ONES,
    tableOffset: o.tableOffset,
    headerVersion: HEADER_VERSION,
    maxTableEntries: o.maxTableEntries,
    blockSize: o.blockSize,
    checksum: 0,
    parentUniqueId: o.parentUniqueId ?? Buffer.alloc(16),
    parentTimeStamp: o.parentTimeStamp ?? 0,
    parentUnicodeName: name.subarray(0, 512),
    locators,
  });
  buf.writeUInt32BE(vhdChecksum(buf, DYN_HEADER_CHECKSUM_OFFSET), DYN_HEADER_CHECKSUM_OFFSET);
  return buf;
}
