/**
 * Partition-table structures, declared once (offsets, sizes, magic). All integers are little-endian.
 *
 * MBR / EBR (one 512-byte sector at LBA 0, or at each EBR's LBA inside an extended partition):
 *   0x1BE  4 x 16-byte partition entries      0x1FE  boot signature 0x55 0xAA
 *   An EBR uses entry 0 (the logical partition, LBA relative to this EBR) and entry 1 (the next EBR, LBA
 *   relative to the start of the outermost extended partition); entries 2-3 are unused.
 * GPT header (LBA 1; backup copy at the last LBA), 92 bytes used, rest of the sector reserved (zero):
 *   CRC-32 (IEEE) over `headerSize` bytes with the CRC field counted as zero; the entries array CRC-32 over
 *   `entryCount * entrySize` bytes. Entries are 128 bytes or a larger power of two.
 */
import { defineStruct } from '../../formats/struct.js';

export const MBR_SECTOR = 512;
export const MBR_ENTRIES_AT = 0x1be;
export const MBR_ENTRY_COUNT = 4;
export const MBR_SIGNATURE_AT = 0x1fe;
export const MBR_SIGNATURE = 0xaa55; // bytes 0x55 0xAA read as u16le

export const MBR_ENTRY = defineStruct('MBR partition entry', 16, {
  status: { offset: 0, size: 1, type: 'u8' }, // 0x80 bootable, 0x00 not; anything else: not a partition table
  chsFirst: { offset: 1, size: 3, type: 'bytes' },
  type: { offset: 4, size: 1, type: 'u8' },
  chsLast: { offset: 5, size: 3, type: 'bytes' },
  lbaFirst: { offset: 8, size: 4, type: 'u32le' },
  sectors: { offset: 12, size: 4, type: 'u32le' },
});

export const MBR_TYPE_EMPTY = 0x00;
export const MBR_TYPE_GPT_PROTECTIVE = 0xee;
export const MBR_EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);

export const GPT_SIGNATURE = 'EFI PART';
export const GPT_REVISION = 0x00010000;
export const GPT_HEADER_MIN = 92;
export const GPT_ENTRY_MIN = 128;
/** Largest entries array read (the spec's minimum is 16 KiB; 1 MiB bounds what a damaged header can ask). */
export const GPT_ENTRIES_MAX_BYTES = 1 << 20;

export const GPT_HEADER = defineStruct('GPT header', GPT_HEADER_MIN, {
  signature: { offset: 0, size: 8, type: 'ascii' },
  revision: { offset: 8, size: 4, type: 'u32le' },
  headerSize: { offset: 12, size: 4, type: 'u32le' },
  headerCrc: { offset: 16, size: 4, type: 'u32le' },
  reserved: { offset: 20, size: 4, type: 'u32le' },
  myLba: { offset: 24, size: 8, type: 'u64le' },
  alternateLba: { offset: 32, size: 8, type: 'u64le' },
  firstUsableLba: { offset: 40, size: 8, type: 'u64le' },
  lastUsableLba: { offset: 48, size: 8, type: 'u64le' },
  diskGuid: { offset: 56, size: 16, type: 'bytes' },
  entriesLba: { offset: 72, size: 8, type: 'u64le' },
  entryCount: { offset: 80, size: 4, type: 'u32le' },
  entrySize: { offset: 84, size: 4, type: 'u32le' },
  entriesCrc: { offset: 88, size: 4, type: 'u32le' },
});

export const GPT_ENTRY = defineStruct('GPT partition entry', GPT_ENTRY_MIN, {
  typeGuid: { offset: 0, size: 16, type: 'bytes' },
  uniqueGuid: { offset: 16, size: 16, type: 'bytes' },
  firstLba: { offset: 32, size: 8, type: 'u64le' },
  lastLba: { offset: 40, size: 8, type: 'u64le' },
  attributes: { offset: 48, size: 8, type: 'bytes' },
  name: { offset: 56, size: 72, type: 'bytes' }, // UTF-16LE, NUL-padded
});
