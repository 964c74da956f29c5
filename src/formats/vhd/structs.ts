/**
 * VHD on-disk structures, declared once (Microsoft "Virtual Hard Disk Image Format Specification", v1.0).
 * All integers big-endian; a sector is 512 bytes.
 *
 * File layouts:
 * - fixed:        [data: virtual size bytes][footer 512]
 * - dynamic/diff: [footer copy 512][dynamic header 1024][BAT, sector-padded][parent locator data...]
 *                 [block: sector bitmap (sector-padded) + block data]... [footer 512]
 *
 * Checksums (footer and dynamic header): one's complement of the byte sum of the structure with the checksum
 * field taken as zero. Time stamps: seconds since 2000-01-01T00:00:00Z.
 */
import { defineStruct } from '../struct.js';

export const SECTOR = 512;
export const FOOTER_SIZE = 512;
export const DYN_HEADER_SIZE = 1024;
export const FOOTER_COOKIE = 'conectix';
export const DYN_COOKIE = 'cxsparse';
export const FORMAT_VERSION = 0x00010000;
export const HEADER_VERSION = 0x00010000;
/** Features bit 1 ("reserved") must always be set. */
export const FEATURE_RESERVED = 0x2;
export const BAT_UNUSED = 0xffffffff;
/** Unix time of the VHD epoch (2000-01-01T00:00:00Z). */
export const VHD_EPOCH = 946684800;
/** Largest disk the specification allows (2040 GiB); bigger geometry saturates. */
export const VHD_MAX_SIZE = 2040 * 1024 ** 3;
/** CHS geometry saturated at its maximum means "use the current size". */
export const MAX_CHS_SECTORS = 65535 * 16 * 255;

export const DiskType = { fixed: 2, dynamic: 3, differencing: 4 } as const;

export const FOOTER = defineStruct('VHD footer', FOOTER_SIZE, {
  cookie: { offset: 0, size: 8, type: 'ascii' },
  features: { offset: 8, size: 4, type: 'u32be' },
  formatVersion: { offset: 12, size: 4, type: 'u32be' },
  dataOffset: { offset: 16, size: 8, type: 'u64be' },
  timeStamp: { offset: 24, size: 4, type: 'u32be' },
  creatorApplication: { offset: 28, size: 4, type: 'ascii' },
  creatorVersion: { offset: 32, size: 4, type: 'u32be' },
  creatorHostOs: { offset: 36, size: 4, type: 'ascii' },
  originalSize: { offset: 40, size: 8, type: 'u64be' },
  currentSize: { offset: 48, size: 8, type: 'u64be' },
  cylinders: { offset: 56, size: 2, type: 'u16be' },
  heads: { offset: 58, size: 1, type: 'u8' },
  sectorsPerTrack: { offset: 59, size: 1, type: 'u8' },
  diskType: { offset: 60, size: 4, type: 'u32be' },
  checksum: { offset: 64, size: 4, type: 'u32be' },
  uniqueId: { offset: 68, size: 16, type: 'bytes' },
  savedState: { offset: 84, size: 1, type: 'u8' },
});
export const FOOTER_CHECKSUM_OFFSET = 64;

export const LOCATOR_COUNT = 8;
export const LOCATOR_ENTRY_SIZE = 24;
export const LOCATORS_OFFSET = 576;

export const DYN_HEADER = defineStruct('VHD dynamic disk header', DYN_HEADER_SIZE, {
  cookie: { offset: 0, size: 8, type: 'ascii' },
  dataOffset: { offset: 8, size: 8, type: 'u64be' },
  tableOffset: { offset: 16, size: 8, type: 'u64be' },
  headerVersion: { offset: 24, size: 4, type: 'u32be' },
  maxTableEntries: { offset: 28, size: 4, type: 'u32be' },
  blockSize: { offset: 32, size: 4, type: 'u32be' },
  checksum: { offset: 36, size: 4, type: 'u32be' },
  parentUniqueId: { offset: 40, size: 16, type: 'bytes' },
  parentTimeStamp: { offset: 56, size: 4, type: 'u32be' },
  parentUnicodeName: { offset: 64, size: 512, type: 'bytes' },
  locators: { offset: LOCATORS_OFFSET, size: LOCATOR_COUNT * LOCATOR_ENTRY_SIZE, type: 'bytes' },
});
export const DYN_HEADER_CHECKSUM_OFFSET = 36;

/** One parent locator entry (8 of them at offset 576 of the dynamic header). */
export const LOCATOR = defineStruct('VHD parent locator entry', LOCATOR_ENTRY_SIZE, {
  platformCode: { offset: 0, size: 4, type: 'ascii' },
  /** The specification says sectors; Virtual PC and Hyper-V store bytes. Only offset and length are used. */
  platformDataSpace: { offset: 4, size: 4, type: 'u32be' },
  platformDataLength: { offset: 8, size: 4, type: 'u32be' },
  platformDataOffset: { offset: 16, size: 8, type: 'u64be' },
});

/** Platform codes of parent locators. */
export const Platform = {
  none: '\0\0\0\0',
  /** Windows relative path, UTF-16LE. */
  W2ru: 'W2ru',
  /** Windows absolute path, UTF-16LE. */
  W2ku: 'W2ku',
  /** Deprecated Windows relative/absolute paths (ANSI). */
  Wi2r: 'Wi2r',
  Wi2k: 'Wi2k',
  /** Mac OS alias blob (not a path: not decoded). */
  Mac: 'Mac ',
  /** Mac OS X file URL, UTF-8 (file://...). */
  MacX: 'MacX',
} as const;

/** One's complement of the byte sum of `buf`, skipping the 4-byte checksum field at `checksumOffset`. */
export function vhdChecksum(buf: Buffer, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue;
    sum += buf[i]!;
  }
  return ~sum >>> 0;
}

/** Bytes of the per-block sector bitmap, padded to a whole sector. */
export function bitmapBytes(blockSize: number): number {
  return Math.ceil(blockSize / SECTOR / 8 / SECTOR) * SECTOR;
}

/** CHS geometry for a size, by the specification's algorithm (appendix "CHS calculation"). */
export function chsGeometry(size: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let totalSectors = Math.floor(size / SECTOR);
  if (totalSectors > MAX_CHS_SECTORS) totalSectors = MAX_CHS_SECTORS;
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}
