/**
 * Where a file's logical blocks are: `run(lblk)` answers the longest run starting at `lblk` that is either
 * physically contiguous (pblk set) or reads as zeros (a hole, or an uninitialized extent). Two mappers:
 * - extents: the tree is walked from the root in i_block on each call (nodes come from the block cache), index
 *   entries narrowing the logical range; every node's magic, entry count, depth and block number are checked,
 *   and a node block met twice on one walk is SV_ERR_FS_EXT_LOOP;
 * - legacy block maps: 12 direct pointers, single/double/triple indirect blocks (depth fixed, so no loop).
 * Pointers outside the file system are SV_ERR_FS_EXT_CORRUPT, never read.
 */
import { SvError } from '../../../errors/index.js';
import { badInput, hex } from '../../../errors/bad-input.js';
import type { BlockCache } from '../block-cache.js';
import type { ExtInode } from './inode.js';
import type { ExtGeometry } from './superblock.js';
import {
  DIRECT_BLOCKS, EXTENT_ENTRY_SIZE, EXTENT_HEADER, EXTENT_INDEX, EXTENT_INIT_MAX_LEN, EXTENT_LEAF, EXTENT_MAGIC,
  EXTENT_MAX_DEPTH, INODE,
} from './structs.js';

export interface Run {
  readonly len: number;
  /** First physical block, or undefined: the run reads as zeros. */
  readonly pblk?: number;
}

export interface BlockMapper {
  run(lblk: number): Promise<Run>;
}

/** Logical block numbers are 32-bit in ext. */
const LBLK_LIMIT = 2 ** 32;

export function extentMapper(geo: ExtGeometry, cache: BlockCache, inode: ExtInode): BlockMapper {
  const where = (blk: number | undefined, i = 0) => (blk === undefined ? inode.offset + INODE.fields.block.offset : blk * geo.blockSize) + i;
  const check = (cond: boolean, blk: number | undefined, structure: string, i: number, expected: string | number, found: string | number) => {
    if (!cond) throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `inode ${inode.ino} ${structure}`, where(blk, i), expected, found);
  };
  return {
    async run(lblk: number): Promise<Run> {
      let node = inode.block;
      let nodeBlk: number | undefined;
      let expectDepth: number | undefined;
      let upper = LBLK_LIMIT;
      const visited = new Set<number>();
      for (;;) {
        const h = EXTENT_HEADER.decode(node);
        check(h.magic === EXTENT_MAGIC, nodeBlk, 'extent header magic', 0, hex(EXTENT_MAGIC), hex(h.magic));
        const room = Math.floor((node.length - EXTENT_HEADER.size) / EXTENT_ENTRY_SIZE);
        check(h.max <= room && h.entries <= h.max, nodeBlk, 'extent header entries', 2, `entries <= max <= ${room}`, `${h.entries}/${h.max}`);
        check(h.depth <= EXTENT_MAX_DEPTH && (expectDepth === undefined || h.depth === expectDepth), nodeBlk, 'extent header depth', 6,
          expectDepth ?? `<= ${EXTENT_MAX_DEPTH}`, h.depth);
        const entry = (k: number) => EXTENT_HEADER.size + k * EXTENT_ENTRY_SIZE;
        // The last entry whose first logical block is <= lblk (entries are sorted).
        let lo = 0;
        let hi = h.entries - 1;
        let found = -1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          if (node.readUInt32LE(entry(mid)) <= lblk) { found = mid; lo = mid + 1; } else hi = mid - 1;
        }
        const nextStart = found + 1 < h.entries ? Math.min(upper, node.readUInt32LE(entry(found + 1))) : upper;
        if (h.depth === 0) {
          if (found < 0) return { len: Math.max(1, (h.entries > 0 ? node.readUInt32LE(entry(0)) : upper) - lblk) };
          const e = EXTENT_LEAF.decode(node, entry(found));
          const uninit = e.len > EXTENT_INIT_MAX_LEN;
          const len = uninit ? e.len - EXTENT_INIT_MAX_LEN : e.len;
          const start = e.startLo + e.startHi * 2 ** 32;
          check(len > 0 && start + len <= geo.blocksCount && e.block + len <= LBLK_LIMIT, nodeBlk, 'extent', entry(found),
            `a block range inside the file system (${geo.blocksCount} blocks)`, `${start}+${len}`);
          if (lblk >= e.block + len) return { len: Math.max(1, nextStart - lblk) };
          const left = e.block + len - lblk;
          return uninit ? { len: left } : { len: left, pblk: start + (lblk - e.block) };
        }
        if (found < 0) return { len: Math.max(1, (h.entries > 0 ? node.readUInt32LE(entry(0)) : upper) - lblk) };
        const ix = EXTENT_INDEX.decode(node, entry(found));
        const child = ix.leafLo + ix.leafHi * 2 ** 32;
        check(child > geo.firstDataBlock && child < geo.blocksCount, nodeBlk, 'extent index', entry(found), `a block inside 1..${geo.blocksCount - 1}`, child);
        if (visited.has(child)) {
          throw new SvError('SV_ERR_FS_EXT_LOOP', `${geo.name}: inode ${inode.ino} extent tree: node block ${child} is reached twice`,
            { structure: 'extent index', offset: where(nodeBlk, entry(found)), found: child });
        }
        visited.add(child);
        upper = nextStart;
        expectDepth = h.depth - 1;
        nodeBlk = child;
        node = await cache.read(child);
      }
    },
  };
}

export function legacyMapper(geo: ExtGeometry, cache: BlockCache, inode: ExtInode): BlockMapper {
  const per = geo.blockSize / 4;
  const pointer = (buf: Buffer, i: number, structure: string, at: number): number => {
    const p = buf.readUInt32LE(i * 4);
    if (p !== 0 && (p < geo.firstDataBlock || p >= geo.blocksCount)) {
      throw badInput('SV_ERR_FS_EXT_CORRUPT', geo.name, `inode ${inode.ino} ${structure}`, at + i * 4, `a block inside the file system (${geo.blocksCount} blocks)`, p);
    }
    return p;
  };
  /** The run at index `i` of a pointer array: contiguous pointers merged, up to the array's end. */
  const runIn = (buf: Buffer, i: number, count: number, structure: string, at: number): Run => {
    const first = pointer(buf, i, structure, at);
    let n = 1;
    while (i + n < count) {
      const p = pointer(buf, i + n, structure, at);
      if (first === 0 ? p !== 0 : p !== first + n) break;
      n++;
    }
    return first === 0 ? { len: n } : { len: n, pblk: first };
  };
  const iblockAt = inode.offset + INODE.fields.block.offset;
  return {
    async run(lblk: number): Promise<Run> {
      if (lblk < DIRECT_BLOCKS) return runIn(inode.block, lblk, DIRECT_BLOCKS, 'direct block pointer', iblockAt);
      let rel = lblk - DIRECT_BLOCKS;
      for (let level = 1; level <= 3; level++) {
        const span = per ** level;
        if (rel < span) {
          let blk = pointer(inode.block, DIRECT_BLOCKS + level - 1, 'indirect block pointer', iblockAt);
          let cover = span;
          for (let d = level; d >= 1; d--) {
            if (blk === 0) return { len: cover - rel };
            const sub = cover / per;
            const buf = await cache.read(blk);
            const idx = Math.floor(rel / sub);
            if (d === 1) return runIn(buf, idx, per, 'block map', blk * geo.blockSize);
            blk = pointer(buf, idx, 'indirect block', blk * geo.blockSize);
            rel %= sub;
            cover = sub;
          }
        }
        rel -= span;
      }
      return { len: LBLK_LIMIT };
    },
  };
}

/** Read `length` bytes at `offset` of a file of `size` bytes through its mapper (holes and uninit as zeros). */
export async function readMapped(geo: ExtGeometry, read: (at: number, len: number) => Promise<Buffer>, mapper: BlockMapper,
  size: number, offset: number, length: number): Promise<Buffer> {
  const end = Math.min(size, offset + length);
  if (offset >= end) return Buffer.alloc(0);
  const out = Buffer.alloc(end - offset);
  const bs = geo.blockSize;
  let pos = offset;
  while (pos < end) {
    const lblk = Math.floor(pos / bs);
    const run = await mapper.run(lblk);
    const runEnd = Math.min(end, (lblk + run.len) * bs);
    if (run.pblk !== undefined) {
      const data = await read(run.pblk * bs + (pos - lblk * bs), runEnd - pos);
      data.copy(out, pos - offset);
    }
    pos = runEnd;
  }
  return out;
}
