/**
 * ext directory contents: linear entry blocks (ext4_dir_entry_2, or the old form with a 16-bit name length
 * when the FILETYPE feature is off), inline directories (parent inode + entries in i_block, more in the
 * "system.data" in-inode xattr), and htree lookups (dx_root / dx_node levels, binary search on the name hash,
 * then the one leaf block, following collision continuations). Every rec_len, name length, inode number and
 * dx count/limit is checked against its block; a dx block met twice is SV_ERR_FS_EXT_LOOP.
 */
import { SvError } from '../../../errors/index.js';
import { badInput } from '../../../errors/bad-input.js';
import { DX_HASH, dxHash } from './dx-hash.js';
import type { ExtGeometry } from './superblock.js';
import {
  DIRENT, DIRENT_HEADER, DX_COUNT_LIMIT, DX_ENTRY_SIZE, DX_MAX_LEVELS, DX_NODE_ENTRIES_AT, DX_ROOT_INFO, DX_ROOT_INFO_AT,
  INCOMPAT, XATTR_ENTRY, XATTR_INDEX_SYSTEM, XATTR_MAGIC,
} from './structs.js';

export interface RawDirEntry {
  readonly name: Buffer;
  readonly ino: number;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/**
 * Entries of one directory region (a block, or an inline area). `at` is its byte offset in the volume (for
 * errors). '.' and '..' are left out; unused entries (inode 0: deleted, dx nodes, checksum tails) skipped.
 */
export function parseDirRegion(geo: ExtGeometry, buf: Buffer, at: number, ino: number, out: RawDirEntry[]): void {
  const filetype = (geo.incompat & INCOMPAT.FILETYPE) !== 0;
  let pos = 0;
  while (pos < buf.length) {
    const bad = (field: string, expected: string | number, found: string | number) =>
      badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `directory ${ino} entry ${field}`, at + pos, expected, found);
    if (buf.length - pos < DIRENT_HEADER) throw bad('header', `${DIRENT_HEADER} bytes`, buf.length - pos);
    const d = DIRENT.decode(buf, pos);
    let recLen = d.recLen;
    if (geo.blockSize === 65536 && (recLen === 65535 || recLen === 0) && buf.length === 65536) recLen = 65536;
    const nameLen = filetype ? d.nameLen : d.nameLen | (d.fileType << 8);
    if (recLen < DIRENT_HEADER || recLen % 4 !== 0 || pos + recLen > buf.length) {
      throw bad('rec_len', `a multiple of 4 from ${DIRENT_HEADER} to ${buf.length - pos}`, recLen);
    }
    if (d.inode !== 0) {
      if (DIRENT_HEADER + nameLen > recLen || nameLen === 0) throw bad('name_len', `1..${recLen - DIRENT_HEADER}`, nameLen);
      if (d.inode > geo.inodesCount) throw bad('inode', `1..${geo.inodesCount}`, d.inode);
      const name = buf.subarray(pos + DIRENT_HEADER, pos + DIRENT_HEADER + nameLen);
      if (!name.equals(DOT) && !name.equals(DOTDOT)) out.push({ name: Buffer.from(name), ino: d.inode });
    }
    pos += recLen;
  }
}

/** The value of the in-inode xattr "system.data" (inline data beyond i_block), or an empty buffer. */
export function inlineDataXattr(name: string, area: Buffer, at: number, ino: number): Buffer {
  if (area.length < 4 || area.readUInt32LE(0) !== XATTR_MAGIC) return Buffer.alloc(0);
  const base = 4;
  let pos = base;
  while (pos + 4 <= area.length && area.readUInt32LE(pos) !== 0) {
    if (pos + XATTR_ENTRY.size > area.length) break;
    const e = XATTR_ENTRY.decode(area, pos);
    const nameAt = pos + XATTR_ENTRY.size;
    if (nameAt + e.nameLen > area.length) {
      throw badInput('SV_ERR_FS_EXT_CORRUPT', name, `inode ${ino} xattr entry name`, at + pos, `at most ${area.length - nameAt} bytes`, e.nameLen);
    }
    if (e.nameIndex === XATTR_INDEX_SYSTEM && area.toString('latin1', nameAt, nameAt + e.nameLen) === 'data') {
      if (e.valueInum !== 0 || base + e.valueOffs + e.valueSize > area.length) {
        throw badInput('SV_ERR_FS_EXT_CORRUPT', name, `inode ${ino} xattr system.data value`, at + pos, `inside the inode (${area.length - base} bytes)`, `${e.valueOffs}+${e.valueSize}`);
      }
      return area.subarray(base + e.valueOffs, base + e.valueOffs + e.valueSize);
    }
    pos = nameAt + ((e.nameLen + 3) & ~3);
  }
  return Buffer.alloc(0);
}

export interface DxContext {
  readonly geo: ExtGeometry;
  readonly ino: number;
  /** Logical directory blocks in the directory. */
  readonly blocks: number;
  /** Read logical block `lblk` of the directory, and its byte offset in the volume. */
  block(lblk: number): Promise<{ buf: Buffer; at: number }>;
}

/**
 * Look `name` up through the htree index. Returns the inode number, 0 when the index says the name is not
 * there, or undefined when the index cannot be used (unknown hash version): the caller scans linearly.
 */
export async function dxLookup(ctx: DxContext, name: Buffer): Promise<number | undefined> {
  const { geo, ino } = ctx;
  const root = await ctx.block(0);
  const bad = (structure: string, off: number, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `directory ${ino} ${structure}`, root.at + off, expected, found);
  const info = DX_ROOT_INFO.decode(root.buf, DX_ROOT_INFO_AT);
  const maxLevels = (geo.incompat & INCOMPAT.LARGEDIR) !== 0 ? DX_MAX_LEVELS : 2;
  if (info.infoLength !== DX_ROOT_INFO.size) throw bad('htree root info_length', DX_ROOT_INFO_AT + DX_ROOT_INFO.fields.infoLength.offset, DX_ROOT_INFO.size, info.infoLength);
  if (info.indirectLevels >= maxLevels) throw bad('htree root indirect_levels', DX_ROOT_INFO_AT + DX_ROOT_INFO.fields.indirectLevels.offset, `< ${maxLevels}`, info.indirectLevels);
  let version = info.hashVersion;
  if (version <= DX_HASH.TEA && (geo.flags & 0x2) !== 0) version += 3;
  const hash = dxHash(name, version, geo.hashSeed);
  if (hash === undefined) return undefined;
  let node = root;
  let entriesAt = DX_ROOT_INFO_AT + info.infoLength;
  const visited = new Set<number>([0]);
  const follow = async (lblk: number, structure: string, off: number) => {
    if (lblk >= ctx.blocks) throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `directory ${ino} ${structure}`, node.at + off, `a block below ${ctx.blocks}`, lblk);
    if (visited.has(lblk)) {
      throw new SvError('SV_ERR_FS_EXT_LOOP', `${geo.name}: directory ${ino} htree: block ${lblk} is reached twice`, { structure, offset: node.at + off, found: lblk });
    }
    visited.add(lblk);
    return ctx.block(lblk);
  };
  for (let level = 0; ; level++) {
    const cl = DX_COUNT_LIMIT.decode(node.buf, entriesAt);
    const room = Math.floor((node.buf.length - entriesAt) / DX_ENTRY_SIZE);
    if (cl.count < 1 || cl.count > cl.limit || cl.limit > room) {
      throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `directory ${ino} htree count/limit`, node.at + entriesAt, `1 <= count <= limit <= ${room}`, `${cl.count}/${cl.limit}`);
    }
    const hashAt = (k: number) => (k === 0 ? 0 : node.buf.readUInt32LE(entriesAt + k * DX_ENTRY_SIZE));
    const blockAt = (k: number) => node.buf.readUInt32LE(entriesAt + k * DX_ENTRY_SIZE + 4);
    let lo = 1;
    let hi = cl.count - 1;
    let k = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (hashAt(mid) <= hash) { k = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (level < info.indirectLevels) {
      node = await follow(blockAt(k), 'htree index entry', entriesAt + k * DX_ENTRY_SIZE);
      const fake = DIRENT.decode(node.buf, 0);
      if (fake.inode !== 0) throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `directory ${ino} htree node`, node.at, 'a node (inode 0)', fake.inode);
      entriesAt = DX_NODE_ENTRIES_AT;
      continue;
    }
    // Leaf level: search the block, then any following block whose hash continues this one (collision bit).
    for (;;) {
      const leaf = await follow(blockAt(k), 'htree leaf entry', entriesAt + k * DX_ENTRY_SIZE);
      const found: RawDirEntry[] = [];
      parseDirRegion(geo, leaf.buf, leaf.at, ino, found);
      const hit = found.find((e) => e.name.equals(name));
      if (hit) return hit.ino;
      k++;
      if (k >= cl.count) return 0;
      const next = hashAt(k);
      if ((next & 1) === 0 || (next & ~1) >>> 0 !== hash) return 0;
    }
  }
}
