/**
 * NTFS on-disk structures, declared once (offsets, sizes, magic). All integers are little-endian. Sources: the
 * public descriptions of the NTFS layout (Linux-NTFS documentation, ntfs-3g's layout.h comments, MS-FSCC).
 *
 * Boot sector (sector 0 of the volume, 512 bytes): OEM id "NTFS    ", BIOS parameter block, MFT and MFT mirror
 * cluster numbers, MFT record and index block sizes (a positive byte = clusters, a negative one = 2^-n bytes).
 * MFT record ("FILE", usually 1024 bytes): header, update sequence array, attributes until type 0xFFFFFFFF.
 * Index block ("INDX", usually 4096 bytes) inside $INDEX_ALLOCATION: header, update sequence array, an index
 * header, then index entries. Both multi-sector structures carry update-sequence fixups: the last two bytes
 * of every 512-byte stride hold the update sequence number, the original bytes sit in the array.
 * Attribute: a 16-byte common header, then a resident part (value inline) or a non-resident part (VCN range,
 * sizes, runlist = "mapping pairs"). MFT references are 48-bit record numbers + 16-bit sequence numbers.
 * Times are FILETIME: 100 ns units since 1601-01-01 UTC.
 */
import { defineStruct } from '../../../formats/struct.js';

export const NTFS_OEM_ID = 'NTFS    ';
export const BOOT_SIGNATURE_AT = 0x1fe;
export const BOOT_SIGNATURE = 0xaa55;
/** Update-sequence fixups are applied per 512-byte stride, whatever the sector size. */
export const FIXUP_STRIDE = 512;

export const BOOT_SECTOR = defineStruct('NTFS boot sector', 512, {
  jump: { offset: 0, size: 3, type: 'bytes' },
  oemId: { offset: 3, size: 8, type: 'ascii' },
  bytesPerSector: { offset: 0x0b, size: 2, type: 'u16le' },
  sectorsPerCluster: { offset: 0x0d, size: 1, type: 'u8' }, // > 0x80: 2^(256 - n) (clusters of 64 KiB and more)
  reservedSectors: { offset: 0x0e, size: 2, type: 'u16le' },
  mediaDescriptor: { offset: 0x15, size: 1, type: 'u8' },
  totalSectors: { offset: 0x28, size: 8, type: 'u64le' },
  mftLcn: { offset: 0x30, size: 8, type: 'u64le' },
  mftMirrLcn: { offset: 0x38, size: 8, type: 'u64le' },
  clustersPerRecord: { offset: 0x40, size: 1, type: 'u8' }, // signed
  clustersPerIndexBlock: { offset: 0x44, size: 1, type: 'u8' }, // signed
  serial: { offset: 0x48, size: 8, type: 'bytes' },
  signature: { offset: BOOT_SIGNATURE_AT, size: 2, type: 'u16le' },
});

export const RECORD_MAGIC = 'FILE';
export const INDEX_BLOCK_MAGIC = 'INDX';

/** Header shared by FILE and INDX blocks (multi-sector protected). */
export const MULTI_SECTOR_HEADER = defineStruct('NTFS multi-sector header', 8, {
  magic: { offset: 0, size: 4, type: 'ascii' },
  usaOffset: { offset: 4, size: 2, type: 'u16le' },
  usaCount: { offset: 6, size: 2, type: 'u16le' }, // 1 (the sequence number) + one per 512-byte stride
});

export const RECORD_HEADER = defineStruct('MFT record header', 48, {
  magic: { offset: 0, size: 4, type: 'ascii' },
  usaOffset: { offset: 4, size: 2, type: 'u16le' },
  usaCount: { offset: 6, size: 2, type: 'u16le' },
  lsn: { offset: 8, size: 8, type: 'bytes' },
  sequence: { offset: 0x10, size: 2, type: 'u16le' },
  linkCount: { offset: 0x12, size: 2, type: 'u16le' },
  attrsOffset: { offset: 0x14, size: 2, type: 'u16le' },
  flags: { offset: 0x16, size: 2, type: 'u16le' },
  bytesUsed: { offset: 0x18, size: 4, type: 'u32le' },
  bytesAllocated: { offset: 0x1c, size: 4, type: 'u32le' },
  baseRef: { offset: 0x20, size: 8, type: 'bytes' }, // MFT reference of the base record; 0 in a base record
  nextAttrId: { offset: 0x28, size: 2, type: 'u16le' },
  recordNumber: { offset: 0x2c, size: 4, type: 'u32le' }, // NTFS 3.1; older versions put the USA here
});
export const RECORD_IN_USE = 0x0001;
export const RECORD_IS_DIRECTORY = 0x0002;

export const ATTR_HEADER = defineStruct('NTFS attribute header', 16, {
  type: { offset: 0, size: 4, type: 'u32le' },
  length: { offset: 4, size: 4, type: 'u32le' },
  nonResident: { offset: 8, size: 1, type: 'u8' },
  nameLength: { offset: 9, size: 1, type: 'u8' }, // UTF-16 code units
  nameOffset: { offset: 0x0a, size: 2, type: 'u16le' },
  flags: { offset: 0x0c, size: 2, type: 'u16le' },
  id: { offset: 0x0e, size: 2, type: 'u16le' },
});
export const ATTR_END = 0xffffffff;
export const ATTR_FLAG_COMPRESSED = 0x0001;
export const ATTR_FLAG_COMPRESSION_MASK = 0x00ff;
export const ATTR_FLAG_ENCRYPTED = 0x4000;
export const ATTR_FLAG_SPARSE = 0x8000;

export const RESIDENT_PART = defineStruct('NTFS resident attribute', 24, {
  valueLength: { offset: 0x10, size: 4, type: 'u32le' },
  valueOffset: { offset: 0x14, size: 2, type: 'u16le' },
  indexed: { offset: 0x16, size: 1, type: 'u8' },
});

export const NON_RESIDENT_PART = defineStruct('NTFS non-resident attribute', 64, {
  startVcn: { offset: 0x10, size: 8, type: 'u64le' },
  lastVcn: { offset: 0x18, size: 8, type: 'u64le' },
  runsOffset: { offset: 0x20, size: 2, type: 'u16le' },
  compressionUnit: { offset: 0x22, size: 2, type: 'u16le' }, // log2 of clusters per compression unit; 0 = none
  allocatedSize: { offset: 0x28, size: 8, type: 'u64le' },
  dataSize: { offset: 0x30, size: 8, type: 'u64le' },
  initializedSize: { offset: 0x38, size: 8, type: 'u64le' },
  // 0x40 compressed size (u64) follows when compressionUnit != 0
});

/** Attribute type codes used by this reader. */
export const AT = {
  STANDARD_INFORMATION: 0x10,
  ATTRIBUTE_LIST: 0x20,
  FILE_NAME: 0x30,
  VOLUME_NAME: 0x60,
  DATA: 0x80,
  INDEX_ROOT: 0x90,
  INDEX_ALLOCATION: 0xa0,
  BITMAP: 0xb0,
  REPARSE_POINT: 0xc0,
} as const;

export const STANDARD_INFORMATION = defineStruct('$STANDARD_INFORMATION', 36, {
  created: { offset: 0, size: 8, type: 'bytes' },
  modified: { offset: 8, size: 8, type: 'bytes' },
  changed: { offset: 16, size: 8, type: 'bytes' }, // MFT record change
  accessed: { offset: 24, size: 8, type: 'bytes' },
  attributes: { offset: 32, size: 4, type: 'u32le' },
});

export const FILE_NAME = defineStruct('$FILE_NAME', 66, {
  parentRef: { offset: 0, size: 8, type: 'bytes' },
  created: { offset: 8, size: 8, type: 'bytes' },
  modified: { offset: 16, size: 8, type: 'bytes' },
  changed: { offset: 24, size: 8, type: 'bytes' },
  accessed: { offset: 32, size: 8, type: 'bytes' },
  allocatedSize: { offset: 40, size: 8, type: 'u64le' },
  dataSize: { offset: 48, size: 8, type: 'u64le' },
  attributes: { offset: 56, size: 4, type: 'u32le' },
  reparse: { offset: 60, size: 4, type: 'u32le' },
  nameLength: { offset: 64, size: 1, type: 'u8' }, // UTF-16 code units, name follows at 66
  namespace: { offset: 65, size: 1, type: 'u8' },
});
export const NS_POSIX = 0;
export const NS_WIN32 = 1;
export const NS_DOS = 2;
export const NS_WIN32_AND_DOS = 3;

export const ATTRIBUTE_LIST_ENTRY = defineStruct('$ATTRIBUTE_LIST entry', 26, {
  type: { offset: 0, size: 4, type: 'u32le' },
  length: { offset: 4, size: 2, type: 'u16le' },
  nameLength: { offset: 6, size: 1, type: 'u8' },
  nameOffset: { offset: 7, size: 1, type: 'u8' },
  startVcn: { offset: 8, size: 8, type: 'u64le' },
  ref: { offset: 16, size: 8, type: 'bytes' }, // the record holding this extent
  id: { offset: 24, size: 2, type: 'u16le' },
});

export const INDEX_ROOT = defineStruct('$INDEX_ROOT', 16, {
  indexedType: { offset: 0, size: 4, type: 'u32le' }, // 0x30 ($FILE_NAME) for $I30
  collation: { offset: 4, size: 4, type: 'u32le' },
  blockSize: { offset: 8, size: 4, type: 'u32le' },
  clustersPerBlock: { offset: 12, size: 1, type: 'u8' },
});
export const INDEX_ROOT_HEADER_AT = 16;

/** The index header inside $INDEX_ROOT (at 16) and inside an INDX block (at 24); offsets relative to itself. */
export const INDEX_HEADER = defineStruct('NTFS index header', 16, {
  entriesOffset: { offset: 0, size: 4, type: 'u32le' },
  entriesEnd: { offset: 4, size: 4, type: 'u32le' }, // "index length": end of the last entry
  allocated: { offset: 8, size: 4, type: 'u32le' },
  flags: { offset: 12, size: 1, type: 'u8' }, // 1: large index (entries have sub-nodes)
});

export const INDEX_BLOCK_HEADER = defineStruct('INDX block header', 24, {
  magic: { offset: 0, size: 4, type: 'ascii' },
  usaOffset: { offset: 4, size: 2, type: 'u16le' },
  usaCount: { offset: 6, size: 2, type: 'u16le' },
  lsn: { offset: 8, size: 8, type: 'bytes' },
  vcn: { offset: 16, size: 8, type: 'u64le' },
});
export const INDEX_BLOCK_HEADER_AT = 24;

export const INDEX_ENTRY = defineStruct('NTFS index entry', 16, {
  ref: { offset: 0, size: 8, type: 'bytes' },
  length: { offset: 8, size: 2, type: 'u16le' },
  keyLength: { offset: 10, size: 2, type: 'u16le' },
  flags: { offset: 12, size: 2, type: 'u16le' },
});
export const INDEX_ENTRY_HAS_CHILD = 0x01;
export const INDEX_ENTRY_LAST = 0x02;

export const REPARSE_HEADER = defineStruct('$REPARSE_POINT', 8, {
  tag: { offset: 0, size: 4, type: 'u32le' },
  dataLength: { offset: 4, size: 2, type: 'u16le' },
});
export const REPARSE_TAG_SYMLINK = 0xa000000c;
export const REPARSE_TAG_MOUNT_POINT = 0xa0000003;
/** After the reparse header: where the two names sit in the path buffer (byte offsets and lengths). */
export const REPARSE_LINK = defineStruct('symbolic link / mount point reparse data', 8, {
  substituteOffset: { offset: 0, size: 2, type: 'u16le' },
  substituteLength: { offset: 2, size: 2, type: 'u16le' },
  printOffset: { offset: 4, size: 2, type: 'u16le' },
  printLength: { offset: 6, size: 2, type: 'u16le' },
  // symbolic links only: u32 flags (1 = relative), then the path buffer; mount points: the path buffer
});
/** An Interix (SFU) symbolic link, as ntfs-3g creates them: a SYSTEM file whose data is this + UTF-16 target. */
export const INTERIX_SYMLINK_MAGIC = 'IntxLNK\x01';

/** $STANDARD_INFORMATION / $FILE_NAME attribute bits. */
export const FILE_ATTR_SYSTEM = 0x4;
export const FILE_ATTR_REPARSE_POINT = 0x400;
export const FILE_ATTR_DIRECTORY_INDEX = 0x10000000;

/** Well-known MFT record numbers. */
export const MFT_RECORD = { MFT: 0, VOLUME: 3, ROOT: 5, UPCASE: 10 } as const;

/** 48-bit record number and 16-bit sequence of an MFT reference at `at`. */
export function mftRef(buf: Buffer, at = 0): { record: number; sequence: number } {
  return { record: buf.readUInt32LE(at) + buf.readUInt16LE(at + 4) * 0x1_0000_0000, sequence: buf.readUInt16LE(at + 6) };
}

const FILETIME_EPOCH_DELTA_MS = 11_644_473_600_000;

/**
 * FILETIME (100 ns since 1601) at `at` → milliseconds since 1970 (undefined for 0, "not set"). Exact integer
 * arithmetic in doubles, no BigInt (a listing converts four per entry): hi·2^32 + lo = hi·(429,496·10^4 + 7,296)
 * + lo, so the quotient by 10^4 is hi·429,496 + ⌊(hi·7,296 + lo) / 10^4⌋, every term below 2^53.
 */
export function filetimeMs(buf: Buffer, at = 0): number | undefined {
  const lo = buf.readUInt32LE(at);
  const hi = buf.readUInt32LE(at + 4);
  if (lo === 0 && hi === 0) return undefined;
  return hi * 429_496 + Math.floor((hi * 7_296 + lo) / 10_000) - FILETIME_EPOCH_DELTA_MS;
}

/** A UTF-16LE name of `units` code units at `at`. */
export function utf16(buf: Buffer, at: number, units: number): string {
  return buf.toString('utf16le', at, at + units * 2);
}
