/**
 * Read-only NTFS reader (issue 12, item-level restore), written from the public on-disk layout (structs.ts):
 * boot sector → MFT (located through record 0's own runlist) → files (base record + $ATTRIBUTE_LIST extension
 * records) → directories ($I30 B+ tree) → data ($DATA resident, run-mapped, sparse, LZNT1-compressed; named
 * $DATA = alternate data streams). Implements the FileSystem contract of ../types.ts.
 *
 * Names: `list` gives one entry per name a file has in the directory: the Win32 (or POSIX) name, with the
 * DOS 8.3 name of the same file as `dosName`; hard links appear under each name. The directory's own "."
 * entry (the root lists itself) is left out; the NTFS metafiles of the root ($MFT, $LogFile, ...) are listed
 * like any file (they are what `ntfsls -a` shows). Lookup is case-insensitive through the volume's $UpCase.
 * Sizes, times and attributes come from each file's MFT record ($STANDARD_INFORMATION and $DATA), not from the
 * copies in the directory index, which Windows updates lazily.
 * Cost: opening reads the boot sector and records 0, 3, 5 and 10; `list` reads the directory's index blocks and
 * the MFT chunks holding its entries' records; `read` reads only the clusters of the range asked for.
 */
import { SvError } from '../../../errors/index.js';
import { isADirectory, notADirectory, pathParts } from '../path.js';
import type { RecordAttribute } from './record.js';
import type { DirEntry, EntryType, FileHandle, FileSystem, StreamInfo, VolumeReader } from '../types.js';
import { looksLikeNtfs, parseBoot, type NtfsGeometry } from './boot.js';
import { DirIndex, type IndexEntry } from './dir-index.js';
import { loadFile, type NtfsFile } from './file.js';
import { attributeHandle } from './handles.js';
import { Lru } from './lru.js';
import { Mft } from './mft.js';
import {
  AT, MFT_RECORD, NS_DOS, RECORD_IS_DIRECTORY, STANDARD_INFORMATION, filetimeMs, utf16,
} from './structs.js';
import { linkTarget } from './links.js';
import { loadUpcase } from './upcase.js';

export { looksLikeNtfs } from './boot.js';

export interface NtfsOpenOptions {
  /** How the volume is named in error messages (e.g. "disk.vhdx volume 2"); default "NTFS volume". */
  readonly name?: string;
}

const FILES = 2048;

export class NtfsFileSystem implements FileSystem {
  readonly type = 'ntfs' as const;
  readonly caseSensitive = false;
  readonly label: string;
  readonly uuid: string;
  readonly blockSize: number;
  readonly geometry: NtfsGeometry;
  /** Non-fatal findings (e.g. $UpCase unreadable). */
  readonly warnings: readonly string[];
  readonly #mft: Mft;
  readonly #up: Uint16Array;
  readonly #files = new Lru<number, NtfsFile>(FILES);

  private constructor(mft: Mft, label: string, up: Uint16Array, warnings: string[]) {
    this.#mft = mft;
    this.geometry = mft.geo;
    this.label = label;
    this.uuid = mft.geo.serial;
    this.blockSize = mft.geo.clusterSize;
    this.#up = up;
    this.warnings = warnings;
  }

  static async open(vol: VolumeReader, opts: NtfsOpenOptions = {}): Promise<NtfsFileSystem> {
    const name = opts.name ?? 'NTFS volume';
    const geo = parseBoot(name, await vol.read(0, Math.min(512, vol.size)), vol.size);
    const mft = await Mft.open(vol, geo, name);
    const self = await loadFile(mft, MFT_RECORD.MFT);
    const data = self.attributes.find((a) => a.type === AT.DATA && a.name === '');
    if (data?.nonResident) mft.setFullRuns(data.nonResident.runs, data.nonResident.dataSize, data.nonResident.initializedSize);
    const warnings: string[] = [];
    const volume = await loadFile(mft, MFT_RECORD.VOLUME);
    const labelAttr = volume.attributes.find((a) => a.type === AT.VOLUME_NAME);
    const label = labelAttr?.value ? utf16(labelAttr.value, 0, labelAttr.value.length >> 1) : '';
    const upcaseFile = await loadFile(mft, MFT_RECORD.UPCASE).catch((err: unknown) => {
      warnings.push(`$UpCase unreadable: ${(err as Error).message}`);
      return undefined;
    });
    const up = await loadUpcase(mft, upcaseFile, warnings);
    return new NtfsFileSystem(mft, label, up, warnings);
  }

  async stat(path: string): Promise<DirEntry> {
    const { file, entry } = await this.#resolve(path);
    return this.#entry(file, entry?.name ?? '/', undefined);
  }

  async list(path: string): Promise<DirEntry[]> {
    const { file } = await this.#resolve(path);
    const index = this.#index(file, path);
    const entries = await index.all();
    const dosNames = new Map<number, string>();
    for (const e of entries) if (e.namespace === NS_DOS) dosNames.set(e.record, e.name);
    const out: DirEntry[] = [];
    for (const e of entries) {
      if (e.namespace === NS_DOS || e.record === file.record) continue;
      out.push(await this.#entry(await this.#file(e.record, e.sequence), e.name, dosNames.get(e.record)));
    }
    return out;
  }

  async open(path: string, stream = ''): Promise<FileHandle> {
    const { file } = await this.#resolve(path);
    const data = file.attributes.find((a) => a.type === AT.DATA && a.name === stream);
    if (!data) {
      if (stream === '' && file.flags & RECORD_IS_DIRECTORY) throw isADirectory(this.#mft.name, path);
      throw new SvError('SV_ERR_FS_NOT_FOUND', `${this.#mft.name}: ${path} has no ${stream ? `stream "${stream}"` : 'data'}`, { path, stream });
    }
    return attributeHandle(this.#mft, file, data);
  }

  async streams(path: string): Promise<StreamInfo[]> {
    const { file } = await this.#resolve(path);
    return file.attributes
      .filter((a) => a.type === AT.DATA && a.name !== '')
      .map((a) => ({ name: a.name, size: a.value?.length ?? a.nonResident!.dataSize }));
  }

  async #file(record: number, sequence?: number): Promise<NtfsFile> {
    let f = this.#files.get(record);
    if (f && sequence !== undefined && sequence !== 0 && f.sequence !== sequence) f = undefined;
    if (!f) {
      f = await loadFile(this.#mft, record, sequence);
      this.#files.set(record, f);
    }
    return f;
  }

  #index(file: NtfsFile, path: string): DirIndex {
    const index = DirIndex.of(this.#mft, file, this.#up);
    if (!index) throw notADirectory(this.#mft.name, path);
    return index;
  }

  async #resolve(path: string): Promise<{ file: NtfsFile; entry?: IndexEntry }> {
    const parts = pathParts(path);
    let file = await this.#file(MFT_RECORD.ROOT);
    let entry: IndexEntry | undefined;
    for (let i = 0; i < parts.length; i++) {
      const sofar = `/${parts.slice(0, i).join('/')}`;
      entry = await this.#index(file, sofar).find(parts[i]!);
      if (!entry) throw new SvError('SV_ERR_FS_NOT_FOUND', `${this.#mft.name}: ${path}: no "${parts[i]}" in ${sofar}`, { path, missing: parts[i] });
      file = await this.#file(entry.record, entry.sequence);
    }
    return entry ? { file, entry } : { file };
  }

  async #entry(file: NtfsFile, name: string, dosName: string | undefined): Promise<DirEntry> {
    // Hot path (once per listed name): one pass over the attributes, times set only when recorded.
    let si: Buffer | undefined;
    let data: RecordAttribute | undefined;
    for (const a of file.attributes) {
      if (a.type === AT.STANDARD_INFORMATION && si === undefined) si = a.value;
      else if (a.type === AT.DATA && a.name === '' && data === undefined) data = a;
    }
    const times: { created?: number; modified?: number; changed?: number; accessed?: number } = {};
    if (si && si.length >= 32) {
      const F = STANDARD_INFORMATION.fields;
      const created = filetimeMs(si, F.created.offset);
      const modified = filetimeMs(si, F.modified.offset);
      const changed = filetimeMs(si, F.changed.offset);
      const accessed = filetimeMs(si, F.accessed.offset);
      if (created !== undefined) times.created = created;
      if (modified !== undefined) times.modified = modified;
      if (changed !== undefined) times.changed = changed;
      if (accessed !== undefined) times.accessed = accessed;
    }
    const attributes = si && si.length >= 36 ? si.readUInt32LE(STANDARD_INFORMATION.fields.attributes.offset) : undefined;
    const isDir = (file.flags & RECORD_IS_DIRECTORY) !== 0;
    const target = await linkTarget(this.#mft, file, attributes ?? 0, isDir);
    const type: EntryType = target !== undefined ? 'symlink' : isDir ? 'directory' : 'file';
    const entry: { -readonly [K in keyof DirEntry]: DirEntry[K] } = { name, type, id: file.record, times, size: isDir ? 0 : data?.value?.length ?? data?.nonResident?.dataSize ?? 0 };
    if (dosName !== undefined && dosName !== name) entry.dosName = dosName;
    if (attributes !== undefined) entry.attributes = attributes;
    if (target !== undefined) entry.target = target;
    return entry;
  }
}

/** Open `vol` as NTFS (probe first with looksLikeNtfs). */
export function openNtfs(vol: VolumeReader, opts?: NtfsOpenOptions): Promise<FileSystem> {
  return NtfsFileSystem.open(vol, opts);
}

export type { NtfsGeometry };
export const probeNtfs = looksLikeNtfs;
