/**
 * ext inodes: located through their group descriptor, decoded, with times at full precision (seconds as a
 * signed 32-bit value extended by the two epoch bits of the *_extra fields, nanoseconds in their upper 30
 * bits) when i_extra_isize covers them. The in-inode extended attribute area is kept for inline data.
 */
import { badInput } from '../../../errors/bad-input.js';
import type { BlockCache } from '../block-cache.js';
import type { FileTimes } from '../types.js';
import { groupDescOffset, type ExtGeometry } from './superblock.js';
import { GROUP_DESC, INODE, INODE_BASE_SIZE, INODE_EXTRA_END } from './structs.js';

export interface ExtInode {
  readonly ino: number;
  /** Byte offset of the inode in the volume (for error messages). */
  readonly offset: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly linksCount: number;
  readonly flags: number;
  /** i_block, 60 bytes. */
  readonly block: Buffer;
  readonly times: FileTimes;
  /** Exact seconds and nanoseconds, as debugfs prints them. */
  readonly exactTimes: Readonly<Record<'atime' | 'ctime' | 'mtime' | 'crtime', { sec: number; nsec: number } | undefined>>;
  /** Bytes after 128 + i_extra_isize up to the inode size (in-inode xattrs). */
  readonly xattrArea: Buffer;
}

/** Seconds and nanoseconds from a 32-bit time and its extra field (epoch bits 0-1, nanoseconds bits 2-31). */
export function extTime(seconds: number, extra: number | undefined): { sec: number; nsec: number } {
  const signed = seconds | 0;
  if (extra === undefined) return { sec: signed, nsec: 0 };
  return { sec: signed + (extra & 3) * 2 ** 32, nsec: extra >>> 2 };
}

const toMs = (t: { sec: number; nsec: number } | undefined): number | undefined => (t ? t.sec * 1000 + t.nsec / 1e6 : undefined);

export async function readInode(geo: ExtGeometry, cache: BlockCache, ino: number): Promise<ExtInode> {
  if (!Number.isInteger(ino) || ino < 1 || ino > geo.inodesCount) {
    throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, 'inode number', 0, `1..${geo.inodesCount}`, ino);
  }
  const group = Math.floor((ino - 1) / geo.inodesPerGroup);
  const slot = (ino - 1) % geo.inodesPerGroup;
  const bs = geo.blockSize;
  const descAt = groupDescOffset(geo, group);
  const descBlock = await cache.read(Math.floor(descAt / bs));
  const d = GROUP_DESC.decode(paddedDesc(descBlock, descAt % bs, geo.descSize));
  const table = d.inodeTableLo + (geo.descSize >= 64 ? d.inodeTableHi * 2 ** 32 : 0);
  const tableBlocks = Math.ceil((geo.inodesPerGroup * geo.inodeSize) / bs);
  if (table < geo.firstDataBlock + 1 || table + tableBlocks > geo.blocksCount) {
    throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `group ${group} descriptor inode table`, descAt, `a block range inside 1..${geo.blocksCount}`, table);
  }
  const at = table * bs + slot * geo.inodeSize;
  const blk = await cache.read(Math.floor(at / bs));
  const raw = blk.subarray(at % bs, at % bs + geo.inodeSize);
  return decodeInode(geo, ino, at, raw);
}

/** A descriptor read as 64 bytes (a 32-byte descriptor's high halves read as zero). */
function paddedDesc(block: Buffer, at: number, size: number): Buffer {
  const out = Buffer.alloc(GROUP_DESC.size);
  block.copy(out, 0, at, at + Math.min(size, GROUP_DESC.size));
  return out;
}

export function decodeInode(geo: ExtGeometry, ino: number, at: number, raw: Buffer): ExtInode {
  const full = raw.length >= INODE.size ? raw : Buffer.concat([raw, Buffer.alloc(INODE.size - raw.length)]);
  const i = INODE.decode(full);
  const extraIsize = raw.length > INODE_BASE_SIZE ? i.extraIsize : 0;
  if (extraIsize > 0 && (INODE_BASE_SIZE + extraIsize > raw.length || extraIsize % 4 !== 0)) {
    throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `inode ${ino} i_extra_isize`, at + INODE.fields.extraIsize.offset, `a multiple of 4 up to ${raw.length - INODE_BASE_SIZE}`, extraIsize);
  }
  const end = INODE_BASE_SIZE + extraIsize;
  const has = (field: keyof typeof INODE_EXTRA_END) => end >= INODE_EXTRA_END[field];
  const size = i.sizeLo + i.sizeHigh * 2 ** 32;
  if (size > Number.MAX_SAFE_INTEGER) throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `inode ${ino} size`, at + INODE.fields.sizeLo.offset, 'at most 2^53 - 1', size);
  const exactTimes = {
    atime: extTime(i.atime, has('atime') ? i.atimeExtra : undefined),
    ctime: extTime(i.ctime, has('ctime') ? i.ctimeExtra : undefined),
    mtime: extTime(i.mtime, has('mtime') ? i.mtimeExtra : undefined),
    crtime: has('crtime') ? extTime(i.crtime, i.crtimeExtra) : undefined,
  };
  return {
    ino, offset: at, mode: i.mode, size, flags: i.flags, block: i.block, exactTimes,
    uid: i.uid + i.uidHigh * 65536,
    gid: i.gid + i.gidHigh * 65536,
    linksCount: i.linksCount,
    times: { modified: toMs(exactTimes.mtime), accessed: toMs(exactTimes.atime), changed: toMs(exactTimes.ctime), created: toMs(exactTimes.crtime) },
    xattrArea: raw.subarray(end),
  };
}
