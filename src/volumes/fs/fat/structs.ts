/**
 * FAT12/16/32 on-disk structures, declared once. All integers little-endian.
 *
 * Volume: boot sector (BPB) at 0, reserved sectors, then numFats copies of the FAT, then (FAT12/16) the fixed
 * root directory of rootEntries x 32 bytes, then the data region: cluster n (n >= 2) at
 * dataStart + (n - 2) x sectorsPerCluster sectors. FAT entries are 12 bits (packed, 1.5 bytes), 16 bits or
 * 28 bits (low bits of 32); values: 0 free, 2..maxCluster next cluster, BAD (…FF7), end of chain (>= …FF8).
 * The FAT type follows from the count of data clusters (< 4085 FAT12, < 65525 FAT16), except that a BPB
 * with a zero 16-bit FAT size is FAT32 whatever the count (as Linux and mkfs.fat decide).
 * Directory entries are 32 bytes: 8.3 name, attributes, times, first cluster, size; VFAT long names precede
 * their short entry as LFN entries (attribute 0x0F) holding 13 UTF-16 characters each, last part first, each
 * with the checksum of the 8.3 name.
 */
import { defineStruct } from '../../../formats/struct.js';

export const BOOT_SIGNATURE_AT = 510;
export const BOOT_SIGNATURE = 0xaa55;

export const BPB = defineStruct('FAT boot sector', 512, {
  oemName: { offset: 0x03, size: 8, type: 'ascii' },
  bytesPerSector: { offset: 0x0b, size: 2, type: 'u16le' },
  sectorsPerCluster: { offset: 0x0d, size: 1, type: 'u8' },
  reservedSectors: { offset: 0x0e, size: 2, type: 'u16le' },
  numFats: { offset: 0x10, size: 1, type: 'u8' },
  rootEntries: { offset: 0x11, size: 2, type: 'u16le' },
  totalSectors16: { offset: 0x13, size: 2, type: 'u16le' },
  media: { offset: 0x15, size: 1, type: 'u8' },
  fatSize16: { offset: 0x16, size: 2, type: 'u16le' },
  totalSectors32: { offset: 0x20, size: 4, type: 'u32le' },
  signature: { offset: BOOT_SIGNATURE_AT, size: 2, type: 'u16le' },
});

/** Extended BPB of FAT12/16 (at 0x24). */
export const EBPB16 = defineStruct('FAT12/16 extended BPB', 26, {
  bootSig: { offset: 0x26 - 0x24, size: 1, type: 'u8' },
  volumeId: { offset: 0x27 - 0x24, size: 4, type: 'u32le' },
  volumeLabel: { offset: 0x2b - 0x24, size: 11, type: 'bytes' },
});

/** Extended BPB of FAT32 (at 0x24). */
export const EBPB32 = defineStruct('FAT32 extended BPB', 54, {
  fatSize32: { offset: 0x24 - 0x24, size: 4, type: 'u32le' },
  extFlags: { offset: 0x28 - 0x24, size: 2, type: 'u16le' },
  fsVersion: { offset: 0x2a - 0x24, size: 2, type: 'u16le' },
  rootCluster: { offset: 0x2c - 0x24, size: 4, type: 'u32le' },
  bootSig: { offset: 0x42 - 0x24, size: 1, type: 'u8' },
  volumeId: { offset: 0x43 - 0x24, size: 4, type: 'u32le' },
  volumeLabel: { offset: 0x47 - 0x24, size: 11, type: 'bytes' },
});
export const EBPB_AT = 0x24;
export const EXTENDED_BOOT_SIG = 0x29;

export const FAT12_MAX_CLUSTERS = 4084;
export const FAT16_MAX_CLUSTERS = 65524;
/** Highest cluster count a FAT32 entry (28 bits) can address, less the reserved values. */
export const FAT32_MAX_CLUSTERS = 0x0ffffff5;

export const DIR_ENTRY_SIZE = 32;
export const DIR_ENTRY = defineStruct('FAT directory entry', DIR_ENTRY_SIZE, {
  name: { offset: 0x00, size: 11, type: 'bytes' },
  attr: { offset: 0x0b, size: 1, type: 'u8' },
  ntRes: { offset: 0x0c, size: 1, type: 'u8' },
  crtTimeTenth: { offset: 0x0d, size: 1, type: 'u8' },
  crtTime: { offset: 0x0e, size: 2, type: 'u16le' },
  crtDate: { offset: 0x10, size: 2, type: 'u16le' },
  lstAccDate: { offset: 0x12, size: 2, type: 'u16le' },
  fstClusHi: { offset: 0x14, size: 2, type: 'u16le' },
  wrtTime: { offset: 0x16, size: 2, type: 'u16le' },
  wrtDate: { offset: 0x18, size: 2, type: 'u16le' },
  fstClusLo: { offset: 0x1a, size: 2, type: 'u16le' },
  fileSize: { offset: 0x1c, size: 4, type: 'u32le' },
});

export const LFN_ENTRY = defineStruct('VFAT long-name entry', DIR_ENTRY_SIZE, {
  ord: { offset: 0x00, size: 1, type: 'u8' },
  name1: { offset: 0x01, size: 10, type: 'bytes' },
  attr: { offset: 0x0b, size: 1, type: 'u8' },
  type: { offset: 0x0c, size: 1, type: 'u8' },
  checksum: { offset: 0x0d, size: 1, type: 'u8' },
  name2: { offset: 0x0e, size: 12, type: 'bytes' },
  fstClusLo: { offset: 0x1a, size: 2, type: 'u16le' },
  name3: { offset: 0x1c, size: 4, type: 'bytes' },
});
export const LFN_LAST = 0x40;
export const LFN_CHARS = 13;
export const LFN_MAX_PARTS = 20;

export const ATTR = { READ_ONLY: 0x01, HIDDEN: 0x02, SYSTEM: 0x04, VOLUME_ID: 0x08, DIRECTORY: 0x10, ARCHIVE: 0x20, LFN: 0x0f } as const;
/** Byte 0 of a name: end of directory, deleted entry, and the escape for a name starting with 0xE5. */
export const NAME_END = 0x00;
export const NAME_DELETED = 0xe5;
export const NAME_KANJI_E5 = 0x05;
/** ntRes bits (Windows NT): base name / extension stored upper-case but shown lower-case. */
export const NTRES_LOWER_BASE = 0x08;
export const NTRES_LOWER_EXT = 0x10;
/** A FAT directory holds at most 65536 entries (2 MiB). */
export const DIR_MAX_ENTRIES = 65536;
