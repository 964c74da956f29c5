/**
 * MS-VHDX on-disk layout, declared once: fixed offsets, GUIDs, and every binary structure with its offsets and
 * sizes (through defineStruct, which checks at load that fields neither overlap nor overflow).
 *
 * File layout (all little-endian; every region 1 MiB aligned except the 64 KiB header blocks):
 *   0 KiB     file identifier ("vhdxfile", creator UTF-16LE)          64 KiB block
 *   64 KiB    header 1  ("head", CRC-32C over 4 KiB)                  64 KiB block
 *   128 KiB   header 2                                                64 KiB block
 *   192 KiB   region table 1 ("regi", CRC-32C over 64 KiB)            64 KiB
 *   256 KiB   region table 2 (identical copy)                         64 KiB
 *   1 MiB..   log (LogOffset/LogLength in the header), BAT and metadata regions (region table), payload and
 *             sector bitmap blocks anywhere after, 1 MiB aligned.
 * The metadata region starts with a 64 KiB metadata table ("metadata", no checksum); items follow at offsets
 * >= 64 KiB relative to the region. The BAT interleaves payload entries and sector bitmap entries: after every
 * `chunkRatio` payload entries comes one sector bitmap entry, chunkRatio = 2^23 * logicalSectorSize / blockSize.
 */
import { defineStruct } from '../struct.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export const FILE_IDENTIFIER_OFFSET = 0;
export const HEADER_OFFSETS = [64 * KiB, 128 * KiB] as const;
export const REGION_TABLE_OFFSETS = [192 * KiB, 256 * KiB] as const;
/** Everything below 1 MiB is the header section; no region, log or block may start inside it. */
export const HEADER_SECTION_SIZE = 1 * MiB;
export const REGION_TABLE_SIZE = 64 * KiB;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const MAX_REGION_ENTRIES = 2047;
export const MAX_METADATA_ENTRIES = 2047;
export const MAX_METADATA_ITEM_LENGTH = 1 * MiB;
export const LOG_SECTOR_SIZE = 4 * KiB;
export const SECTOR_BITMAP_BLOCK_SIZE = 1 * MiB;
/** Sectors one sector bitmap block describes (its bits). */
export const SECTORS_PER_BITMAP = 2 ** 23;
export const MIN_BLOCK_SIZE = 1 * MiB;
export const MAX_BLOCK_SIZE = 256 * MiB;
/** 64 TiB, the largest virtual disk MS-VHDX allows. */
export const MAX_VIRTUAL_SIZE = 64 * 1024 * 1024 * MiB;

/**
 * Where our writers put the regions (writer.ts, and the streamed downloads of stream.ts, which must agree byte
 * for byte): log at 1 MiB (1 MiB, empty), metadata region at 2 MiB (1 MiB), BAT at 3 MiB (rounded up to
 * 1 MiB), payload blocks after it. Dynamic images default to 32 MiB blocks (as Hyper-V).
 */
export const WRITER_LOG_OFFSET = 1 * MiB;
export const WRITER_LOG_LENGTH = 1 * MiB;
export const WRITER_METADATA_OFFSET = 2 * MiB;
export const WRITER_METADATA_LENGTH = 1 * MiB;
export const WRITER_BAT_OFFSET = 3 * MiB;
export const WRITER_DYNAMIC_BLOCK_SIZE = 32 * MiB;

export const SIG_FILE = 'vhdxfile';
export const SIG_HEADER = 'head';
export const SIG_REGION = 'regi';
export const SIG_METADATA = 'metadata';
export const SIG_LOG_ENTRY = 'loge';
export const SIG_ZERO = 'zero';
export const SIG_DESC = 'desc';
export const SIG_DATA = 'data';

export const GUIDS = {
  batRegion: '2dc27766-f623-4200-9d64-115e9bfd4a08',
  metadataRegion: '8b7ca206-4790-4b9a-b8fe-575f050f886e',
  fileParameters: 'caa16737-fa36-4d43-b3b6-33f0aa44e76b',
  virtualDiskSize: '2fa54224-cd1b-4876-b211-5dbed83bf4b8',
  page83Data: 'beca12ab-b2e6-4523-93ef-c309e000c746',
  logicalSectorSize: '8141bf1d-a96f-4709-ba47-f233a8faab5f',
  physicalSectorSize: 'cda348c7-445d-4471-9cc9-e9885251c556',
  parentLocator: 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c',
  vhdxParentLocatorType: 'b04aefb7-d19e-4a81-b789-25b8e9445913',
} as const;

/** 0: "vhdxfile", then the creator as up to 256 UTF-16LE code units. */
export const FILE_IDENTIFIER = defineStruct('file identifier', 520, {
  signature: { offset: 0, size: 8, type: 'ascii' },
  creator: { offset: 8, size: 512, type: 'bytes' },
});

/** A header: 4 KiB covered by the checksum (the checksum field counted as zero); the rest of its 64 KiB is reserved. */
export const HEADER = defineStruct('header', 4096, {
  signature: { offset: 0, size: 4, type: 'ascii' },
  checksum: { offset: 4, size: 4, type: 'u32le' },
  sequenceNumber: { offset: 8, size: 8, type: 'bytes' },
  fileWriteGuid: { offset: 16, size: 16, type: 'bytes' },
  dataWriteGuid: { offset: 32, size: 16, type: 'bytes' },
  logGuid: { offset: 48, size: 16, type: 'bytes' },
  logVersion: { offset: 64, size: 2, type: 'u16le' },
  version: { offset: 66, size: 2, type: 'u16le' },
  logLength: { offset: 68, size: 4, type: 'u32le' },
  logOffset: { offset: 72, size: 8, type: 'u64le' },
});

/** Region table header; the checksum covers the whole 64 KiB table. */
export const REGION_TABLE_HEADER = defineStruct('region table header', 16, {
  signature: { offset: 0, size: 4, type: 'ascii' },
  checksum: { offset: 4, size: 4, type: 'u32le' },
  entryCount: { offset: 8, size: 4, type: 'u32le' },
  reserved: { offset: 12, size: 4, type: 'u32le' },
});

/** Region table entry, at 16 + 32 * i. Flags bit 0: Required. */
export const REGION_TABLE_ENTRY = defineStruct('region table entry', 32, {
  guid: { offset: 0, size: 16, type: 'bytes' },
  fileOffset: { offset: 16, size: 8, type: 'u64le' },
  length: { offset: 24, size: 4, type: 'u32le' },
  flags: { offset: 28, size: 4, type: 'u32le' },
});
export const REGION_FLAG_REQUIRED = 1;

export const METADATA_TABLE_HEADER = defineStruct('metadata table header', 32, {
  signature: { offset: 0, size: 8, type: 'ascii' },
  reserved: { offset: 8, size: 2, type: 'u16le' },
  entryCount: { offset: 10, size: 2, type: 'u16le' },
  reserved2: { offset: 12, size: 20, type: 'bytes' },
});

/** Metadata table entry, at 32 + 32 * i. Offset is relative to the metadata region (>= 64 KiB when length > 0). */
export const METADATA_TABLE_ENTRY = defineStruct('metadata table entry', 32, {
  itemId: { offset: 0, size: 16, type: 'bytes' },
  offset: { offset: 16, size: 4, type: 'u32le' },
  length: { offset: 20, size: 4, type: 'u32le' },
  flags: { offset: 24, size: 4, type: 'u32le' },
  reserved2: { offset: 28, size: 4, type: 'u32le' },
});
export const META_FLAG_IS_USER = 1;
export const META_FLAG_IS_VIRTUAL_DISK = 2;
export const META_FLAG_IS_REQUIRED = 4;

/** File Parameters item. Flags bit 0: LeaveBlocksAllocated, bit 1: HasParent. */
export const FILE_PARAMETERS = defineStruct('file parameters metadata item', 8, {
  blockSize: { offset: 0, size: 4, type: 'u32le' },
  flags: { offset: 4, size: 4, type: 'u32le' },
});
export const FILE_PARAM_LEAVE_BLOCKS_ALLOCATED = 1;
export const FILE_PARAM_HAS_PARENT = 2;

export const VIRTUAL_DISK_SIZE = defineStruct('virtual disk size metadata item', 8, {
  virtualDiskSize: { offset: 0, size: 8, type: 'u64le' },
});
export const PAGE83_DATA = defineStruct('page 83 data metadata item', 16, {
  page83Data: { offset: 0, size: 16, type: 'bytes' },
});
export const LOGICAL_SECTOR_SIZE = defineStruct('logical sector size metadata item', 4, {
  logicalSectorSize: { offset: 0, size: 4, type: 'u32le' },
});
export const PHYSICAL_SECTOR_SIZE = defineStruct('physical sector size metadata item', 4, {
  physicalSectorSize: { offset: 0, size: 4, type: 'u32le' },
});

/** Parent locator item: this header, keyValueCount entries, then UTF-16LE keys and values (offsets from the item start). */
export const PARENT_LOCATOR_HEADER = defineStruct('parent locator header', 20, {
  locatorType: { offset: 0, size: 16, type: 'bytes' },
  reserved: { offset: 16, size: 2, type: 'u16le' },
  keyValueCount: { offset: 18, size: 2, type: 'u16le' },
});
export const PARENT_LOCATOR_ENTRY = defineStruct('parent locator entry', 12, {
  keyOffset: { offset: 0, size: 4, type: 'u32le' },
  valueOffset: { offset: 4, size: 4, type: 'u32le' },
  keyLength: { offset: 8, size: 2, type: 'u16le' },
  valueLength: { offset: 10, size: 2, type: 'u16le' },
});

/** BAT entry: one u64. Bits 0-2 state, 3-19 reserved, 20-63 FileOffsetMB. */
export const BAT_ENTRY_SIZE = 8;
export const BAT_STATE_MASK = 0x7;
export const BAT_OFFSET_SHIFT = 20;

export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
export const PAYLOAD_BLOCK_UNMAPPED = 3;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
export const SB_BLOCK_NOT_PRESENT = 0;
export const SB_BLOCK_PRESENT = 6;

export const PAYLOAD_STATE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOT_PRESENT', 1: 'UNDEFINED', 2: 'ZERO', 3: 'UNMAPPED', 6: 'FULLY_PRESENT', 7: 'PARTIALLY_PRESENT',
};

/** Log entry header; the checksum covers the whole entry (EntryLength bytes) with the checksum field as zero. */
export const LOG_ENTRY_HEADER = defineStruct('log entry header', 64, {
  signature: { offset: 0, size: 4, type: 'ascii' },
  checksum: { offset: 4, size: 4, type: 'u32le' },
  entryLength: { offset: 8, size: 4, type: 'u32le' },
  tail: { offset: 12, size: 4, type: 'u32le' },
  sequenceNumber: { offset: 16, size: 8, type: 'bytes' },
  descriptorCount: { offset: 24, size: 4, type: 'u32le' },
  reserved: { offset: 28, size: 4, type: 'u32le' },
  logGuid: { offset: 32, size: 16, type: 'bytes' },
  flushedFileOffset: { offset: 48, size: 8, type: 'u64le' },
  lastFileOffset: { offset: 56, size: 8, type: 'u64le' },
});

/** Descriptors follow the entry header, 32 bytes each. */
export const LOG_DESCRIPTOR_SIZE = 32;
export const ZERO_DESCRIPTOR = defineStruct('log zero descriptor', 32, {
  signature: { offset: 0, size: 4, type: 'ascii' },
  reserved: { offset: 4, size: 4, type: 'u32le' },
  zeroLength: { offset: 8, size: 8, type: 'u64le' },
  fileOffset: { offset: 16, size: 8, type: 'u64le' },
  sequenceNumber: { offset: 24, size: 8, type: 'bytes' },
});
export const DATA_DESCRIPTOR = defineStruct('log data descriptor', 32, {
  signature: { offset: 0, size: 4, type: 'ascii' },
  trailingBytes: { offset: 4, size: 4, type: 'bytes' },
  leadingBytes: { offset: 8, size: 8, type: 'bytes' },
  fileOffset: { offset: 16, size: 8, type: 'u64le' },
  sequenceNumber: { offset: 24, size: 8, type: 'bytes' },
});
/** One 4 KiB data sector per data descriptor, after the descriptor sectors, in descriptor order. */
export const DATA_SECTOR = defineStruct('log data sector', 4096, {
  signature: { offset: 0, size: 4, type: 'ascii' },
  sequenceHigh: { offset: 4, size: 4, type: 'u32le' },
  data: { offset: 8, size: 4084, type: 'bytes' },
  sequenceLow: { offset: 4092, size: 4, type: 'u32le' },
});

/** Chunk ratio: payload blocks per sector bitmap block. */
export function chunkRatioOf(logicalSectorSize: number, blockSize: number): number {
  return (SECTORS_PER_BITMAP * logicalSectorSize) / blockSize;
}
