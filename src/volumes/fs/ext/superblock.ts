/**
 * The ext superblock, checked: magic, block size (1 KiB - 64 KiB), group geometry, inode size, descriptor size,
 * and the INCOMPAT features (an unknown or unsupported one refuses the volume with SV_ERR_FS_EXT_UNSUPPORTED,
 * because reading past a feature we do not understand would return wrong data silently). Also: which ext
 * flavour the volume is (ext2: no journal, no extents; ext3: journal, no extents; ext4 otherwise), and
 * where group descriptors live (classic layout or META_BG).
 */
import { SvError } from '../../../errors/index.js';
import { uuidText } from '../../../formats/struct.js';
import { badInput, hex } from '../../../errors/bad-input.js';
import {
  COMPAT_HAS_JOURNAL, EXT_MAGIC, GROUP_DESC_32, GROUP_DESC_64_MIN, INCOMPAT, INCOMPAT_NAMES, INCOMPAT_SUPPORTED,
  INODE_BASE_SIZE, RO_COMPAT_SPARSE_SUPER, SUPERBLOCK, SUPERBLOCK_AT,
} from './structs.js';

/** How a volume is named in messages when the caller gives no name. */
export const EXT_NAME = 'ext volume';

export interface ExtGeometry {
  /** The volume's name in error messages (e.g. the disk path and partition). */
  readonly name: string;
  readonly type: 'ext2' | 'ext3' | 'ext4';
  readonly blockSize: number;
  readonly blocksCount: number;
  readonly firstDataBlock: number;
  readonly blocksPerGroup: number;
  readonly inodesPerGroup: number;
  readonly inodesCount: number;
  readonly inodeSize: number;
  readonly descSize: number;
  readonly groupCount: number;
  readonly incompat: number;
  readonly roCompat: number;
  readonly firstMetaBg: number;
  readonly hashSeed: number[];
  readonly defHashVersion: number;
  /** s_flags: 0x1 signed directory hash, 0x2 unsigned. */
  readonly flags: number;
  readonly label: string;
  readonly uuid: string;
}

/**
 * Whether the bytes at 1024 look like an ext superblock: the magic, a block size of 1-64 KiB, a revision of 0
 * or 1 and non-zero group sizes (so two stray bytes elsewhere do not claim a volume); `parseSuperblock` checks
 * the rest.
 */
export function looksLikeExt(head: Buffer): boolean {
  if (head.length < SUPERBLOCK_AT + SUPERBLOCK.size) return false;
  const s = SUPERBLOCK.decode(head, SUPERBLOCK_AT);
  return s.magic === EXT_MAGIC && s.logBlockSize <= 6 && s.revLevel <= 1 && s.blocksPerGroup > 0 && s.inodesPerGroup > 0;
}

export function parseSuperblock(buf: Buffer, volumeSize: number, name = EXT_NAME): ExtGeometry {
  const s = SUPERBLOCK.decode(buf);
  const at = (field: keyof typeof SUPERBLOCK.fields) => SUPERBLOCK_AT + SUPERBLOCK.fields[field].offset;
  const bad = (field: keyof typeof SUPERBLOCK.fields, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_EXT_CORRUPT', name, `superblock ${field}`, at(field), expected, found);
  if (s.magic !== EXT_MAGIC) throw bad('magic', hex(EXT_MAGIC), hex(s.magic));
  if (s.logBlockSize > 6) throw bad('logBlockSize', '0..6 (1 KiB - 64 KiB blocks)', s.logBlockSize);
  const blockSize = 1024 << s.logBlockSize;
  const unknown = s.featureIncompat & ~INCOMPAT_SUPPORTED;
  if (unknown !== 0) {
    const names = bits(unknown).map((b) => INCOMPAT_NAMES[b] ?? `unknown feature ${hex(b)}`);
    throw new SvError('SV_ERR_FS_EXT_UNSUPPORTED', `${name}: superblock INCOMPAT features not supported: ${names.join(', ')}`,
      { structure: 'superblock featureIncompat', offset: at('featureIncompat'), found: hex(unknown), features: names });
  }
  const is64 = (s.featureIncompat & INCOMPAT.BIT64) !== 0;
  const blocksCount = s.blocksCountLo + (is64 ? s.blocksCountHi * 2 ** 32 : 0);
  if (blocksCount === 0 || blocksCount * blockSize > volumeSize) {
    throw bad('blocksCountLo', `a block count inside the volume (${Math.floor(volumeSize / blockSize)} blocks)`, blocksCount);
  }
  const firstDataBlock = s.firstDataBlock;
  if (firstDataBlock !== (blockSize === 1024 ? 1 : 0) && firstDataBlock !== 0) throw bad('firstDataBlock', blockSize === 1024 ? '0 or 1' : 0, firstDataBlock);
  if (s.blocksPerGroup === 0 || s.blocksPerGroup > 8 * blockSize) throw bad('blocksPerGroup', `1..${8 * blockSize}`, s.blocksPerGroup);
  if (s.inodesPerGroup === 0 || s.inodesPerGroup > 8 * blockSize) throw bad('inodesPerGroup', `1..${8 * blockSize}`, s.inodesPerGroup);
  const inodeSize = s.revLevel === 0 ? INODE_BASE_SIZE : s.inodeSize;
  if (inodeSize < INODE_BASE_SIZE || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) {
    throw bad('inodeSize', `a power of two from ${INODE_BASE_SIZE} to the block size`, inodeSize);
  }
  const descSize = is64 ? s.descSize : GROUP_DESC_32;
  if (is64 && (descSize < GROUP_DESC_64_MIN || descSize > 1024 || (descSize & (descSize - 1)) !== 0)) {
    throw bad('descSize', `a power of two from ${GROUP_DESC_64_MIN} to 1024`, descSize);
  }
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / s.blocksPerGroup);
  if (groupCount < 1) throw bad('blocksCountLo', `more blocks than the first data block ${firstDataBlock}`, blocksCount);
  const inodesCount = groupCount * s.inodesPerGroup;
  if (s.inodesCount > inodesCount) throw bad('inodesCount', `at most ${inodesCount} (groups x inodes per group)`, s.inodesCount);
  const journal = (s.featureCompat & COMPAT_HAS_JOURNAL) !== 0;
  const extents = (s.featureIncompat & (INCOMPAT.EXTENTS | INCOMPAT.BIT64 | INCOMPAT.FLEX_BG | INCOMPAT.INLINE_DATA)) !== 0;
  const type = extents ? 'ext4' : journal ? 'ext3' : 'ext2';
  const nul = s.volumeName.indexOf(0);
  return {
    name, type, blockSize, blocksCount, firstDataBlock, inodeSize, descSize, groupCount,
    blocksPerGroup: s.blocksPerGroup,
    inodesPerGroup: s.inodesPerGroup,
    inodesCount: s.inodesCount,
    incompat: s.featureIncompat,
    roCompat: s.featureRoCompat,
    firstMetaBg: s.firstMetaBg,
    hashSeed: [0, 4, 8, 12].map((o) => s.hashSeed.readUInt32LE(o)),
    defHashVersion: s.defHashVersion,
    flags: s.flags,
    label: s.volumeName.subarray(0, nul >= 0 ? nul : 16).toString('utf8'),
    uuid: uuidText(s.uuid),
  };
}

function bits(n: number): number[] {
  const out: number[] = [];
  for (let b = 1; b !== 0 && b <= n >>> 0; b = (b << 1) >>> 0) if ((n & b) !== 0) out.push(b);
  return out;
}

/** Whether group `g` holds a superblock backup (and so, in META_BG, a descriptor block after it). */
function groupHasSuper(geo: ExtGeometry, g: number): boolean {
  if (g <= 1 || (geo.roCompat & RO_COMPAT_SPARSE_SUPER) === 0) return true;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < g) p *= base;
    if (p === g) return true;
  }
  return false;
}

/** Byte offset in the volume of group `g`'s descriptor. */
export function groupDescOffset(geo: ExtGeometry, g: number): number {
  const perBlock = geo.blockSize / geo.descSize;
  const metaGroup = Math.floor(g / perBlock);
  const inBlock = (g % perBlock) * geo.descSize;
  if ((geo.incompat & INCOMPAT.META_BG) !== 0 && metaGroup >= geo.firstMetaBg) {
    const first = metaGroup * perBlock;
    const block = geo.firstDataBlock + first * geo.blocksPerGroup + (groupHasSuper(geo, first) ? 1 : 0);
    return block * geo.blockSize + inBlock;
  }
  return (geo.firstDataBlock + 1) * geo.blockSize + g * geo.descSize;
}
