/**
 * The ext2/3/4 reader (FileSystem contract in ../types.ts), read-only, written here rather than using the
 * `ext2fs` package (libext2fs in WebAssembly): see docs/VOLUMES.md "ext2/3/4: why our own reader" for the
 * measurements. Layout in structs.ts; the superblock, inodes, block maps and directories each in their file.
 *
 * Reads: the superblock (once), then per request only the blocks needed: group descriptor block, inode table
 * block, extent-tree nodes or indirect blocks, directory blocks (through the shared LRU BlockCache), and file
 * data straight from the volume in physically contiguous runs. Lookups in htree directories read the index
 * path and one leaf block, not the whole directory. The journal is not replayed (a volume backed up while
 * mounted reads as its blocks stand, as after a crash before recovery).
 */
import type { BlockCache as Cache } from '../block-cache.js';
import { BlockCache } from '../block-cache.js';
import { isADirectory, notADirectory, notFound, pathParts } from '../path.js';
import type { DirEntry, EntryType, FileHandle, FileSystem, StreamInfo, VolumeReader } from '../types.js';
import { extentMapper, legacyMapper, readMapped, type BlockMapper } from './blockmap.js';
import { dxLookup, inlineDataXattr, parseDirRegion, type RawDirEntry } from './dir.js';
import { readInode, type ExtInode } from './inode.js';
import { badInput } from '../../../errors/bad-input.js';
import { EXT_NAME, looksLikeExt, parseSuperblock, type ExtGeometry } from './superblock.js';
import { EXT_ROOT_INO, I_BLOCK_SIZE, INODE, INODE_FLAG, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, SUPERBLOCK_AT, SUPERBLOCK_SIZE } from './structs.js';

/** Inodes read concurrently when listing a directory. */
const LIST_PARALLEL = 16;

/** Directories with the casefold flag hash a folded name: their lookups scan instead of using the htree. */
const CASEFOLD_FL = 0x40000000;

export function probeExt(head: Buffer): boolean {
  return looksLikeExt(head);
}

export async function openExt(volume: VolumeReader, opts: { name?: string } = {}): Promise<ExtFs> {
  const name = opts.name ?? EXT_NAME;
  if (volume.size < SUPERBLOCK_AT + SUPERBLOCK_SIZE) {
    throw badInput('SV_ERR_FS_EXT_CORRUPT', name, 'superblock', SUPERBLOCK_AT, `a volume of at least ${SUPERBLOCK_AT + SUPERBLOCK_SIZE} bytes`, volume.size);
  }
  const geo = parseSuperblock(await volume.read(SUPERBLOCK_AT, SUPERBLOCK_SIZE), volume.size, name);
  return new ExtFs(volume, geo);
}

export class ExtFs implements FileSystem {
  readonly type: 'ext2' | 'ext3' | 'ext4';
  readonly label: string;
  readonly uuid: string;
  readonly blockSize: number;
  readonly caseSensitive = true;
  readonly geometry: ExtGeometry;
  readonly #volume: VolumeReader;
  readonly cache: Cache;

  constructor(volume: VolumeReader, geo: ExtGeometry) {
    this.#volume = volume;
    this.geometry = geo;
    this.type = geo.type;
    this.label = geo.label;
    this.uuid = geo.uuid;
    this.blockSize = geo.blockSize;
    this.cache = new BlockCache(volume, geo.blockSize);
  }

  async stat(path: string): Promise<DirEntry> {
    const parts = pathParts(path);
    const inode = await this.#resolve(path, parts);
    return this.#entry(parts.at(-1) ?? '', inode);
  }

  async list(path: string): Promise<DirEntry[]> {
    const inode = await this.#resolve(path, pathParts(path));
    if (!isDir(inode)) throw notADirectory(this.geometry.name, path);
    const raw = await this.#entries(inode);
    // Inodes are read in inode order (htree leaves are in hash order): each inode-table block is read once
    // even when the table is larger than the block cache; LIST_PARALLEL reads in flight at a time.
    const order = raw.map((_, i) => i).sort((a, b) => raw[a]!.ino - raw[b]!.ino);
    const out = new Array<DirEntry>(raw.length);
    for (let k = 0; k < order.length; k += LIST_PARALLEL) {
      await Promise.all(order.slice(k, k + LIST_PARALLEL).map(async (i) => {
        const e = raw[i]!;
        out[i] = await this.#entry(e.name.toString('utf8'), await this.inode(e.ino));
      }));
    }
    return out;
  }

  async open(path: string, stream?: string): Promise<FileHandle> {
    if (stream !== undefined && stream !== '') throw notFound(this.geometry.name, `${path}:${stream}`);
    const inode = await this.#resolve(path, pathParts(path));
    if (isDir(inode)) throw isADirectory(this.geometry.name, path);
    return { size: inode.size, read: (offset, length) => this.readInodeData(inode, offset, length) };
  }

  async streams(path: string): Promise<StreamInfo[]> {
    await this.#resolve(path, pathParts(path));
    return [];
  }

  /** The decoded inode `ino` (exposed for tests and diagnostics: exact times, flags). */
  inode(ino: number): Promise<ExtInode> {
    return readInode(this.geometry, this.cache, ino);
  }

  async inodeOf(path: string): Promise<ExtInode> {
    return this.#resolve(path, pathParts(path));
  }

  /** Bytes of a file, directory or slow symlink (inline data, extents or block map; holes read as zeros). */
  async readInodeData(inode: ExtInode, offset: number, length: number): Promise<Buffer> {
    if ((inode.flags & INODE_FLAG.INLINE_DATA) !== 0) {
      const all = this.#inline(inode);
      if (all.length < inode.size) {
        throw badInput('SV_ERR_FS_EXT_CORRUPT', this.geometry.name, `inode ${inode.ino} inline data`, inode.offset, `${inode.size} bytes`, all.length);
      }
      return Buffer.from(all.subarray(Math.min(offset, inode.size), Math.min(inode.size, offset + length)));
    }
    if (isFastSymlink(inode)) return Buffer.from(inode.block.subarray(Math.min(offset, inode.size), Math.min(inode.size, offset + length)));
    return readMapped(this.geometry, (at, len) => this.#volume.read(at, len), this.#mapper(inode), inode.size, offset, length);
  }

  #mapper(inode: ExtInode): BlockMapper {
    return (inode.flags & INODE_FLAG.EXTENTS) !== 0 ? extentMapper(this.geometry, this.cache, inode) : legacyMapper(this.geometry, this.cache, inode);
  }

  #inline(inode: ExtInode): Buffer {
    return Buffer.concat([inode.block, inlineDataXattr(this.geometry.name, inode.xattrArea, this.#xattrAt(inode), inode.ino)]);
  }

  /** Volume offset of an inode's in-inode xattr area (it ends the inode slot). */
  #xattrAt(inode: ExtInode): number {
    return inode.offset + this.geometry.inodeSize - inode.xattrArea.length;
  }

  async #resolve(path: string, parts: string[]): Promise<ExtInode> {
    let inode = await this.inode(EXT_ROOT_INO);
    for (const [i, part] of parts.entries()) {
      if (!isDir(inode)) throw notADirectory(this.geometry.name, '/' + parts.slice(0, i).join('/'));
      const ino = await this.#lookup(inode, Buffer.from(part, 'utf8'));
      if (!ino) throw notFound(this.geometry.name, path);
      inode = await this.inode(ino);
    }
    return inode;
  }

  async #lookup(dir: ExtInode, name: Buffer): Promise<number> {
    const bs = this.blockSize;
    if ((dir.flags & INODE_FLAG.INDEX) !== 0 && (dir.flags & INODE_FLAG.INLINE_DATA) === 0 && (dir.flags & CASEFOLD_FL) === 0) {
      const mapper = this.#mapper(dir);
      const found = await dxLookup({
        geo: this.geometry, ino: dir.ino, blocks: Math.ceil(dir.size / bs),
        block: (lblk) => this.#dirBlock(dir, mapper, lblk),
      }, name);
      if (found !== undefined) return found;
    }
    for await (const batch of this.#entryBatches(dir)) {
      const hit = batch.find((e) => e.name.equals(name));
      if (hit) return hit.ino;
    }
    return 0;
  }

  async #entries(dir: ExtInode): Promise<RawDirEntry[]> {
    const all: RawDirEntry[] = [];
    for await (const batch of this.#entryBatches(dir)) all.push(...batch);
    return all;
  }

  /** Directory entries, one batch per block (inline directories: one batch). */
  async *#entryBatches(dir: ExtInode): AsyncGenerator<RawDirEntry[]> {
    if ((dir.flags & INODE_FLAG.INLINE_DATA) !== 0) {
      const out: RawDirEntry[] = [];
      const iblockAt = dir.offset + INODE.fields.block.offset;
      parseDirRegion(this.geometry, dir.block.subarray(4, I_BLOCK_SIZE), iblockAt + 4, dir.ino, out);
      const more = inlineDataXattr(this.geometry.name, dir.xattrArea, this.#xattrAt(dir), dir.ino);
      if (more.length > 0) parseDirRegion(this.geometry, more, this.#xattrAt(dir), dir.ino, out);
      yield out;
      return;
    }
    const mapper = this.#mapper(dir);
    const blocks = Math.ceil(dir.size / this.blockSize);
    for (let lblk = 0; lblk < blocks; lblk++) {
      const { buf, at } = await this.#dirBlock(dir, mapper, lblk);
      const out: RawDirEntry[] = [];
      parseDirRegion(this.geometry, buf, at, dir.ino, out);
      yield out;
    }
  }

  async #dirBlock(dir: ExtInode, mapper: BlockMapper, lblk: number): Promise<{ buf: Buffer; at: number }> {
    const run = await mapper.run(lblk);
    if (run.pblk === undefined) {
      throw badInput('SV_ERR_FS_EXT_CORRUPT', this.geometry.name, `directory ${dir.ino} block ${lblk}`, dir.offset, 'an allocated block', 'a hole');
    }
    return { buf: await this.cache.read(run.pblk), at: run.pblk * this.blockSize };
  }

  async #entry(name: string, inode: ExtInode): Promise<DirEntry> {
    const type = entryType(inode.mode);
    const base = { name, type, size: inode.size, times: inode.times, id: inode.ino, mode: inode.mode };
    if (type !== 'symlink') return base;
    const target = await this.readInodeData(inode, 0, Math.min(inode.size, 4096));
    return { ...base, target: target.toString('utf8') };
  }
}

function isDir(inode: ExtInode): boolean {
  return (inode.mode & S_IFMT) === S_IFDIR;
}

function isFastSymlink(inode: ExtInode): boolean {
  return (inode.mode & S_IFMT) === S_IFLNK && (inode.flags & INODE_FLAG.INLINE_DATA) === 0 && inode.size < I_BLOCK_SIZE;
}

function entryType(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file';
    case S_IFDIR: return 'directory';
    case S_IFLNK: return 'symlink';
    default: return 'other';
  }
}
