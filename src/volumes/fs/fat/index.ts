/**
 * The FAT12/16/32 reader (FileSystem contract in ../types.ts), read-only, written here rather than using the
 * `fatfs` package: that package has no cluster-chain loop detection (a looping chain hangs its reads), no
 * coded errors, and is a read-write driver last released in 2014 (docs/VOLUMES.md has the evaluation).
 *
 * Reads: the boot sector once, then FAT windows (cached) and directory clusters (cached) as paths are walked,
 * and file data straight from the volume in runs of consecutive clusters. Names are looked up
 * case-insensitively against the long and the 8.3 name, as Windows resolves them. Directories are bounded to
 * 65536 entries (2 MiB), the FAT limit.
 */
import { SvError } from '../../../errors/index.js';
import { badInput } from '../../../errors/bad-input.js';
import { isADirectory, notADirectory, notFound, pathParts } from '../path.js';
import type { DirEntry, FileHandle, FileSystem, StreamInfo, VolumeReader } from '../types.js';
import { FAT_NAME, looksLikeFat, parseBpb, type FatGeometry } from './bpb.js';
import { DirParser, type FatDirEntry } from './dir.js';
import { FatTable, type ClusterRun } from './table.js';
import { ATTR, BPB, DIR_ENTRY_SIZE, DIR_MAX_ENTRIES } from './structs.js';

export function probeFat(head: Buffer): boolean {
  return looksLikeFat(head);
}

export async function openFat(volume: VolumeReader, opts: { name?: string } = {}): Promise<FatFs> {
  const name = opts.name ?? FAT_NAME;
  if (volume.size < BPB.size) throw badInput('SV_ERR_FS_FAT_CORRUPT', name, 'boot sector', 0, `${BPB.size} bytes`, volume.size);
  const geo = parseBpb(await volume.read(0, BPB.size), volume.size, name);
  const fs = new FatFs(volume, geo);
  await fs.init();
  return fs;
}

/** The root: a directory entry made up for '/', identified by its first cluster (0 for the fixed FAT12/16 root). */
const ROOT = (geo: FatGeometry): FatDirEntry => ({ name: '', shortName: '', attr: ATTR.DIRECTORY, firstCluster: geo.rootCluster, size: 0, times: {} });

export class FatFs implements FileSystem {
  readonly type: 'fat12' | 'fat16' | 'fat32';
  label = '';
  readonly uuid: string;
  readonly blockSize: number;
  readonly caseSensitive = false;
  readonly geometry: FatGeometry;
  readonly table: FatTable;
  readonly #volume: VolumeReader;
  readonly #dirs = new Map<number, FatDirEntry[]>();

  constructor(volume: VolumeReader, geo: FatGeometry) {
    this.#volume = volume;
    this.geometry = geo;
    this.type = geo.type;
    this.uuid = geo.serial;
    this.blockSize = geo.clusterSize;
    this.table = new FatTable(volume, geo);
  }

  /** Reads the root directory: its volume-label entry wins over the boot sector's label (as Windows shows it). */
  async init(): Promise<void> {
    const root = await this.#readDir(ROOT(this.geometry), '/');
    this.label = root.label ?? this.geometry.bpbLabel;
  }

  async stat(path: string): Promise<DirEntry> {
    return toDirEntry(await this.#resolve(path));
  }

  async list(path: string): Promise<DirEntry[]> {
    const e = await this.#resolve(path);
    if (!(e.attr & ATTR.DIRECTORY)) throw notADirectory(this.geometry.name, path);
    return (await this.#entries(e, path)).map(toDirEntry);
  }

  async open(path: string, stream?: string): Promise<FileHandle> {
    if (stream !== undefined && stream !== '') throw notFound(this.geometry.name, `${path}:${stream}`);
    const e = await this.#resolve(path);
    if (e.attr & ATTR.DIRECTORY) throw isADirectory(this.geometry.name, path);
    const runs = e.size === 0 ? [] : await this.table.chain(e.firstCluster, `file ${path}`);
    const cs = this.geometry.clusterSize;
    const have = runs.reduce((n, r) => n + r.count, 0);
    if (have * cs < e.size) {
      throw badInput('SV_ERR_FS_FAT_CORRUPT', this.geometry.name, `file ${path} cluster chain`, 0, `${Math.ceil(e.size / cs)} clusters for ${e.size} bytes`, have);
    }
    return { size: e.size, read: (offset, length) => this.#readRuns(runs, e.size, offset, length) };
  }

  async streams(path: string): Promise<StreamInfo[]> {
    await this.#resolve(path);
    return [];
  }

  async #readRuns(runs: ClusterRun[], size: number, offset: number, length: number): Promise<Buffer> {
    const end = Math.min(size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const out = Buffer.alloc(end - offset);
    const cs = this.geometry.clusterSize;
    let fileAt = 0;
    for (const r of runs) {
      const runEnd = fileAt + r.count * cs;
      const from = Math.max(offset, fileAt);
      const to = Math.min(end, runEnd);
      if (from < to) {
        const data = await this.#volume.read(this.#clusterOffset(r.first) + (from - fileAt), to - from);
        data.copy(out, from - offset);
      }
      fileAt = runEnd;
      if (fileAt >= end) break;
    }
    return out;
  }

  #clusterOffset(cluster: number): number {
    return this.geometry.dataOffset + (cluster - 2) * this.geometry.clusterSize;
  }

  async #resolve(path: string): Promise<FatDirEntry> {
    const parts = pathParts(path);
    let cur = ROOT(this.geometry);
    for (const [i, part] of parts.entries()) {
      if (!(cur.attr & ATTR.DIRECTORY)) throw notADirectory(this.geometry.name, '/' + parts.slice(0, i).join('/'));
      const want = part.toUpperCase();
      const hit = (await this.#entries(cur, path)).find((e) => e.name.toUpperCase() === want || e.shortName.toUpperCase() === want);
      if (!hit) throw notFound(this.geometry.name, path);
      cur = hit;
    }
    return cur;
  }

  async #entries(dir: FatDirEntry, path: string): Promise<FatDirEntry[]> {
    const key = dir.firstCluster;
    const cached = this.#dirs.get(key);
    if (cached) return cached;
    const parsed = await this.#readDir(dir, path);
    if (this.#dirs.size >= 256) this.#dirs.delete(this.#dirs.keys().next().value!);
    this.#dirs.set(key, parsed.entries);
    return parsed.entries;
  }

  async #readDir(dir: FatDirEntry, path: string): Promise<DirParser> {
    const parser = new DirParser();
    const geo = this.geometry;
    const maxBytes = DIR_MAX_ENTRIES * DIR_ENTRY_SIZE;
    if (dir.firstCluster === 0) {
      if (dir.name !== '' || geo.type === 'fat32') {
        throw badInput('SV_ERR_FS_FAT_CORRUPT', this.geometry.name, `directory ${path} first cluster`, 0, `2..${geo.maxCluster}`, 0);
      }
      if (geo.rootBytes > 0) parser.feed(await this.#volume.read(geo.rootOffset, geo.rootBytes));
      return parser;
    }
    const runs = await this.table.chain(dir.firstCluster, `directory ${path}`, Math.ceil(maxBytes / geo.clusterSize) + 1);
    // Each run of consecutive clusters is read in one call (a directory is at most 2 MiB).
    let bytes = 0;
    for (const r of runs) {
      if (parser.ended) break;
      const len = Math.min(r.count * geo.clusterSize, maxBytes - bytes);
      if (len > 0) parser.feed(await this.#volume.read(this.#clusterOffset(r.first), len));
      bytes += r.count * geo.clusterSize;
    }
    if (!parser.ended && bytes > maxBytes) {
      throw new SvError('SV_ERR_FS_FAT_CORRUPT', `${this.geometry.name}: directory ${path}: more than ${DIR_MAX_ENTRIES} entries`, { structure: 'directory', path, expected: `at most ${DIR_MAX_ENTRIES} entries` });
    }
    return parser;
  }
}

function toDirEntry(e: FatDirEntry): DirEntry {
  return {
    name: e.name,
    type: e.attr & ATTR.DIRECTORY ? 'directory' : 'file',
    size: e.size,
    times: e.times,
    id: e.firstCluster,
    attributes: e.attr,
  };
}
