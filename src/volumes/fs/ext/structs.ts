/**
 * ext2/3/4 on-disk structures, declared once (offsets, sizes, magic). All integers are little-endian.
 *
 * Volume: the superblock is 1024 bytes at byte 1024. Blocks are 1024 << s_log_block_size bytes; block groups
 * of s_blocks_per_group blocks and s_inodes_per_group inodes. Group descriptors (32 bytes, or s_desc_size >= 64
 * with the 64bit feature) follow the superblock's block (classic layout), or sit at the start of each meta
 * group (META_BG). Inode n lives in group (n-1) / s_inodes_per_group, slot (n-1) % s_inodes_per_group of that
 * group's inode table, each slot s_inode_size bytes (128 + i_extra_isize bytes used).
 * File data: i_block (60 bytes) holds an extent tree root (EXTENTS_FL), 15 block pointers (12 direct, single,
 * double, triple indirect), inline data (INLINE_DATA_FL; the rest in the in-inode xattr "system.data"), or a
 * fast symlink's target. Extent tree nodes are a 12-byte header + 12-byte entries (index or leaf).
 * Directories are blocks of variable-length entries; an htree (INDEX_FL) directory's block 0 holds dx_root
 * after the '.' and '..' entries, and interior dx nodes are blocks whose single fake entry spans the block.
 */
import { defineStruct } from '../../../formats/struct.js';

export const SUPERBLOCK_AT = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

export const SUPERBLOCK = defineStruct('ext superblock', SUPERBLOCK_SIZE, {
  inodesCount: { offset: 0x00, size: 4, type: 'u32le' },
  blocksCountLo: { offset: 0x04, size: 4, type: 'u32le' },
  firstDataBlock: { offset: 0x14, size: 4, type: 'u32le' },
  logBlockSize: { offset: 0x18, size: 4, type: 'u32le' },
  blocksPerGroup: { offset: 0x20, size: 4, type: 'u32le' },
  inodesPerGroup: { offset: 0x28, size: 4, type: 'u32le' },
  magic: { offset: 0x38, size: 2, type: 'u16le' },
  state: { offset: 0x3a, size: 2, type: 'u16le' },
  revLevel: { offset: 0x4c, size: 4, type: 'u32le' },
  firstIno: { offset: 0x54, size: 4, type: 'u32le' },
  inodeSize: { offset: 0x58, size: 2, type: 'u16le' },
  featureCompat: { offset: 0x5c, size: 4, type: 'u32le' },
  featureIncompat: { offset: 0x60, size: 4, type: 'u32le' },
  featureRoCompat: { offset: 0x64, size: 4, type: 'u32le' },
  uuid: { offset: 0x68, size: 16, type: 'bytes' },
  volumeName: { offset: 0x78, size: 16, type: 'bytes' },
  hashSeed: { offset: 0xec, size: 16, type: 'bytes' },
  defHashVersion: { offset: 0xfc, size: 1, type: 'u8' },
  descSize: { offset: 0xfe, size: 2, type: 'u16le' },
  firstMetaBg: { offset: 0x104, size: 4, type: 'u32le' },
  blocksCountHi: { offset: 0x150, size: 4, type: 'u32le' },
  flags: { offset: 0x160, size: 4, type: 'u32le' },
});

/** s_feature_compat: nothing here changes how data is read. */
export const COMPAT_HAS_JOURNAL = 0x4;
/** s_feature_ro_compat */
export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_LARGE_FILE = 0x2;
export const RO_COMPAT_METADATA_CSUM = 0x400;

/** s_feature_incompat bits, with what this reader does about each. */
export const INCOMPAT = {
  COMPRESSION: 0x1,
  FILETYPE: 0x2,
  RECOVER: 0x4,
  JOURNAL_DEV: 0x8,
  META_BG: 0x10,
  EXTENTS: 0x40,
  BIT64: 0x80,
  MMP: 0x100,
  FLEX_BG: 0x200,
  EA_INODE: 0x400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
  ENCRYPT: 0x10000,
  CASEFOLD: 0x20000,
} as const;

/** Features read correctly (RECOVER: the journal is not replayed; the volume is read as its blocks stand). */
export const INCOMPAT_SUPPORTED = INCOMPAT.FILETYPE | INCOMPAT.RECOVER | INCOMPAT.META_BG | INCOMPAT.EXTENTS
  | INCOMPAT.BIT64 | INCOMPAT.MMP | INCOMPAT.FLEX_BG | INCOMPAT.EA_INODE | INCOMPAT.CSUM_SEED | INCOMPAT.LARGEDIR
  | INCOMPAT.INLINE_DATA | INCOMPAT.CASEFOLD;

export const INCOMPAT_NAMES: Readonly<Record<number, string>> = {
  [INCOMPAT.COMPRESSION]: 'compression', [INCOMPAT.JOURNAL_DEV]: 'journal_dev (external journal device)',
  [INCOMPAT.DIRDATA]: 'dirdata', [INCOMPAT.ENCRYPT]: 'encrypt',
};

export const GROUP_DESC_32 = 32;
export const GROUP_DESC_64_MIN = 64;
export const GROUP_DESC = defineStruct('ext group descriptor', GROUP_DESC_64_MIN, {
  inodeTableLo: { offset: 0x08, size: 4, type: 'u32le' },
  flags: { offset: 0x12, size: 2, type: 'u16le' },
  inodeTableHi: { offset: 0x28, size: 4, type: 'u32le' },
});

export const INODE_BASE_SIZE = 128;
export const INODE = defineStruct('ext inode', 160, {
  mode: { offset: 0x00, size: 2, type: 'u16le' },
  uid: { offset: 0x02, size: 2, type: 'u16le' },
  sizeLo: { offset: 0x04, size: 4, type: 'u32le' },
  atime: { offset: 0x08, size: 4, type: 'u32le' },
  ctime: { offset: 0x0c, size: 4, type: 'u32le' },
  mtime: { offset: 0x10, size: 4, type: 'u32le' },
  dtime: { offset: 0x14, size: 4, type: 'u32le' },
  gid: { offset: 0x18, size: 2, type: 'u16le' },
  linksCount: { offset: 0x1a, size: 2, type: 'u16le' },
  blocksLo: { offset: 0x1c, size: 4, type: 'u32le' },
  flags: { offset: 0x20, size: 4, type: 'u32le' },
  block: { offset: 0x28, size: 60, type: 'bytes' },
  sizeHigh: { offset: 0x6c, size: 4, type: 'u32le' },
  uidHigh: { offset: 0x78, size: 2, type: 'u16le' },
  gidHigh: { offset: 0x7a, size: 2, type: 'u16le' },
  extraIsize: { offset: 0x80, size: 2, type: 'u16le' },
  ctimeExtra: { offset: 0x84, size: 4, type: 'u32le' },
  mtimeExtra: { offset: 0x88, size: 4, type: 'u32le' },
  atimeExtra: { offset: 0x8c, size: 4, type: 'u32le' },
  crtime: { offset: 0x90, size: 4, type: 'u32le' },
  crtimeExtra: { offset: 0x94, size: 4, type: 'u32le' },
});
/** Where each extra field ends (it is present when 128 + i_extra_isize reaches that far). */
export const INODE_EXTRA_END = { ctime: 0x88, mtime: 0x8c, atime: 0x90, crtime: 0x98 } as const;

export const I_BLOCK_SIZE = 60;
export const INODE_FLAG = {
  INDEX: 0x1000,
  EXTENTS: 0x80000,
  INLINE_DATA: 0x10000000,
  ENCRYPT: 0x800,
} as const;

export const S_IFMT = 0xf000;
export const S_IFDIR = 0x4000;
export const S_IFREG = 0x8000;
export const S_IFLNK = 0xa000;

export const EXTENT_MAGIC = 0xf30a;
export const EXTENT_MAX_DEPTH = 5;
export const EXTENT_HEADER = defineStruct('ext extent header', 12, {
  magic: { offset: 0, size: 2, type: 'u16le' },
  entries: { offset: 2, size: 2, type: 'u16le' },
  max: { offset: 4, size: 2, type: 'u16le' },
  depth: { offset: 6, size: 2, type: 'u16le' },
});
export const EXTENT_ENTRY_SIZE = 12;
export const EXTENT_LEAF = defineStruct('ext extent', EXTENT_ENTRY_SIZE, {
  block: { offset: 0, size: 4, type: 'u32le' },
  len: { offset: 4, size: 2, type: 'u16le' },
  startHi: { offset: 6, size: 2, type: 'u16le' },
  startLo: { offset: 8, size: 4, type: 'u32le' },
});
export const EXTENT_INDEX = defineStruct('ext extent index', EXTENT_ENTRY_SIZE, {
  block: { offset: 0, size: 4, type: 'u32le' },
  leafLo: { offset: 4, size: 4, type: 'u32le' },
  leafHi: { offset: 8, size: 2, type: 'u16le' },
});
/** ee_len above this marks an uninitialized (preallocated) extent of ee_len - this blocks: it reads as zeros. */
export const EXTENT_INIT_MAX_LEN = 32768;

/** Legacy block map: 12 direct pointers, then single, double and triple indirect. */
export const DIRECT_BLOCKS = 12;

export const DIRENT_HEADER = 8;
export const DIRENT = defineStruct('ext directory entry', DIRENT_HEADER, {
  inode: { offset: 0, size: 4, type: 'u32le' },
  recLen: { offset: 4, size: 2, type: 'u16le' },
  nameLen: { offset: 6, size: 1, type: 'u8' },
  fileType: { offset: 7, size: 1, type: 'u8' },
});

/** dx_root: after '.' (12 bytes) and '..' (header 12 bytes) entries; dx_root_info then count/limit and entries. */
export const DX_ROOT_INFO_AT = 0x18;
export const DX_ROOT_INFO = defineStruct('ext htree root info', 8, {
  reservedZero: { offset: 0, size: 4, type: 'u32le' },
  hashVersion: { offset: 4, size: 1, type: 'u8' },
  infoLength: { offset: 5, size: 1, type: 'u8' },
  indirectLevels: { offset: 6, size: 1, type: 'u8' },
  unusedFlags: { offset: 7, size: 1, type: 'u8' },
});
/** A dx node block: one fake entry (inode 0, rec_len = block) then count/limit at 8. */
export const DX_NODE_ENTRIES_AT = 8;
export const DX_ENTRY_SIZE = 8;
export const DX_COUNT_LIMIT = defineStruct('ext htree count/limit', DX_ENTRY_SIZE, {
  limit: { offset: 0, size: 2, type: 'u16le' },
  count: { offset: 2, size: 2, type: 'u16le' },
  block: { offset: 4, size: 4, type: 'u32le' },
});
export const DX_MAX_LEVELS = 3;

/** In-inode extended attributes (after 128 + i_extra_isize): magic, then entries ending with a zero word. */
export const XATTR_MAGIC = 0xea020000;
export const XATTR_ENTRY = defineStruct('ext xattr entry', 16, {
  nameLen: { offset: 0, size: 1, type: 'u8' },
  nameIndex: { offset: 1, size: 1, type: 'u8' },
  valueOffs: { offset: 2, size: 2, type: 'u16le' },
  valueInum: { offset: 4, size: 4, type: 'u32le' },
  valueSize: { offset: 8, size: 4, type: 'u32le' },
  hash: { offset: 12, size: 4, type: 'u32le' },
});
export const XATTR_INDEX_SYSTEM = 7;
export const EXT_ROOT_INO = 2;
