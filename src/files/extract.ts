/**
 * `files get`: copy files and folders (recursively) out of a recovery point's file system into a local folder.
 *
 * Safety: every name is escaped (names.ts) into ONE path component, so nothing the image holds ('..', '/', NUL,
 * device names, overlong names) can name a file outside `out`. Folders are opened through util/confined.ts
 * (descriptor-relative, no symbolic link followed below `out`, real path re-checked), so a symbolic link the
 * restore itself creates, or one already in `out`, is never written through. Files are written to a temp file in
 * their folder (O_EXCL), fsynced, given their times, then renamed into place; an existing file is refused
 * (SV_ERR_FILES_EXISTS) unless `force`. Two entries of one folder that escape to the same name (a damaged or
 * hostile image) keep the first; the second is reported in `skipped`.
 *
 * Contents go out through the raw image writer (formats/raw/writer.ts, as restore writes disks): the file
 * system's read-ahead chunks are handed over as they were decoded (no copy), page-aligned pieces are written
 * with O_DIRECT where the target file system takes it (buffered otherwise), in large writes overlapped with
 * the next reads.
 *
 * Kept: contents (all-zero 1 MiB runs left as holes), modification and access times (utimes; creation time cannot
 * be set on Linux), POSIX permission bits when the file system has them (ext), symbolic links (ext), NTFS named
 * streams as `name:stream` siblings with `streams`. Not kept: owners, ACLs, device files, FIFOs (skipped).
 */
import { constants } from 'node:fs';
import { open, lstat, mkdir, rename, rm, symlink, lutimes, writeFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { SvError, hasCode, wrapSystemError } from '../errors/index.js';
import { writeRawFile } from '../formats/raw/writer.js';
import type { BlockSource } from '../formats/types.js';
import { ConfinedDir } from '../util/confined.js';
import { tempName } from '../util/stale-temps.js';
import type { DirEntry, FileHandle, FileSystem } from '../volumes/fs/types.js';
import { escapeName } from './names.js';
import { readAhead } from './read-ahead.js';
import { walkTree, type WalkLimits } from './walk.js';

export interface GetOptions extends WalkLimits {
  /** The folder to restore into (created when missing). */
  readonly out: string;
  readonly force?: boolean;
  /** Roots `out` must lie under (the appliance's restore roots); default: `out` itself is the root. */
  readonly confine?: readonly string[];
  /** Also write NTFS named streams, as `name:stream` next to their file. */
  readonly streams?: boolean;
  readonly signal?: AbortSignal;
  readonly progress?: (p: { bytesDone: number; files: number }) => void;
}

export interface GetResult {
  readonly out: string;
  readonly files: number;
  readonly directories: number;
  readonly symlinks: number;
  readonly streams: number;
  readonly bytes: number;
  /** Items written under another name (escaped): up to 1,000 listed, `renamedCount` all of them. */
  readonly renamed: Array<{ path: string; as: string }>;
  readonly renamedCount: number;
  /** Items not written, with why (unaddressable name, duplicate name, device/FIFO). */
  readonly skipped: Array<{ path: string; reason: string }>;
  readonly durationMs: number;
}

/** Written in `out` when a name had to be shortened: shortened relative path → original volume path. */
export const NAMES_FILE = '.shadowvault-names.json';
const MAX_LISTED = 1000;
/** Bytes per block handed to the writer: an all-zero piece is left as a hole. READ_CHUNK is a multiple. */
const PIECE = 1 << 20;

/**
 * A file's contents as a BlockSource of PIECE-byte blocks: views of the read-ahead chunks (no copy), `chunkDone`
 * called before each chunk is handed on (it may throw to stop the copy).
 */
function fileBlocks(handle: FileHandle, path: string, chunkDone: (bytes: number) => void): BlockSource {
  return {
    virtualSize: handle.size,
    blockSize: PIECE,
    async *blocks() {
      let at = 0;
      for await (const chunk of readAhead(handle, path)) {
        chunkDone(chunk.length);
        for (let o = 0; o < chunk.length; o += PIECE) yield { index: (at + o) / PIECE, data: chunk.subarray(o, Math.min(chunk.length, o + PIECE)) };
        at += chunk.length;
      }
    },
  };
}

function fileMode(e: DirEntry, fallback: number): number {
  return e.mode !== undefined ? e.mode & 0o777 : fallback;
}

function timesOf(e: DirEntry): { atime: Date; mtime: Date } | undefined {
  const m = e.times.modified;
  if (m === undefined) return undefined;
  return { atime: new Date(e.times.accessed ?? m), mtime: new Date(m) };
}

class Extractor {
  readonly #fs: FileSystem;
  readonly #opts: GetOptions;
  readonly #out: string;
  readonly #roots: readonly string[];
  files = 0;
  directories = 0;
  symlinks = 0;
  streams = 0;
  bytes = 0;
  renamed: Array<{ path: string; as: string }> = [];
  renamedCount = 0;
  skipped: Array<{ path: string; reason: string }> = [];
  shortened: Record<string, string> = {};

  constructor(fs: FileSystem, opts: GetOptions, out: string) {
    this.#fs = fs;
    this.#opts = opts;
    this.#out = out;
    this.#roots = opts.confine ?? [out];
  }

  #cancelled(): void {
    if (this.#opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'files get cancelled', {});
  }

  /** The escaped name of `raw` in folder `dirKey`, or undefined when the folder already got that name in this run. */
  #name(seen: Set<string>, path: string, raw: string, relDir: string): string | undefined {
    const { name, shortened } = escapeName(raw);
    if (seen.has(name)) {
      this.skipped.push({ path, reason: `another entry of the folder is also written as "${name}"` });
      return undefined;
    }
    seen.add(name);
    const rel = relDir ? `${relDir}/${name}` : name;
    if (name !== raw) {
      this.renamedCount++;
      if (this.renamed.length < MAX_LISTED) this.renamed.push({ path, as: rel });
    }
    if (shortened) this.shortened[rel] = path;
    return name;
  }

  async #openDir(rel: string): Promise<ConfinedDir> {
    try {
      return await ConfinedDir.open(rel ? join(this.#out, rel) : this.#out, this.#roots, { create: true });
    } catch (err) {
      if (hasCode(err, 'SV_ERR_API_PATH_NOT_ALLOWED') && this.#opts.confine === undefined) {
        throw new SvError('SV_ERR_FILES_BAD_TARGET', `${join(this.#out, rel)}: exists and is not a folder (or is a symbolic link); not written through`, { path: join(this.#out, rel) });
      }
      throw err;
    }
  }

  async #refuseExisting(dir: ConfinedDir, name: string, display: string, allowDir: boolean): Promise<void> {
    const st = await lstat(dir.at(name)).catch(() => undefined);
    if (!st) return;
    if (allowDir && st.isDirectory()) return;
    if (!this.#opts.force) throw new SvError('SV_ERR_FILES_EXISTS', `${display} exists (ask to overwrite it with --force)`, { path: display });
    if (st.isDirectory()) throw new SvError('SV_ERR_FILES_EXISTS', `${display} is a folder where a file is restored; remove it first`, { path: display });
  }

  #written(n: number): void {
    this.#cancelled();
    this.bytes += n;
    this.#opts.progress?.({ bytesDone: this.bytes, files: this.files });
  }

  async #writeFile(dir: ConfinedDir, name: string, display: string, path: string, entry: DirEntry, stream?: string): Promise<void> {
    await this.#refuseExisting(dir, name, display, false);
    const handle = await this.#fs.open(path, stream);
    const tmp = dir.at(tempName(Buffer.byteLength(name) > 180 ? 'item' : name));
    try {
      // The raw image writer (as restore writes disks): holes for all-zero 1 MiB pieces, O_DIRECT for the
      // page-aligned rest where the file system takes it, writes overlapped with the next reads.
      await writeRawFile(fileBlocks(handle, path, (n) => this.#written(n)), tmp, { mode: 0o600 });
      const fh = await open(tmp, constants.O_RDWR | constants.O_NOFOLLOW);
      try {
        await fh.chmod(fileMode(entry, 0o644));
        const t = timesOf(entry);
        if (t) await fh.utimes(t.atime, t.mtime);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw wrapSystemError(err, `write ${display}`);
    }
    dir.check();
    await rename(tmp, dir.at(name)).catch(async (err: unknown) => {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw wrapSystemError(err, `rename into ${display}`);
    });
  }

  async #writeSymlink(dir: ConfinedDir, name: string, display: string, entry: DirEntry): Promise<void> {
    await this.#refuseExisting(dir, name, display, false);
    const tmp = dir.at(tempName(Buffer.byteLength(name) > 180 ? 'item' : name));
    await symlink(entry.target ?? '', tmp).catch((err: unknown) => { throw wrapSystemError(err, `create symbolic link ${display}`); });
    const t = timesOf(entry);
    if (t) await lutimes(tmp, t.atime, t.mtime).catch(() => undefined);
    dir.check();
    await rename(tmp, dir.at(name)).catch(async (err: unknown) => {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw wrapSystemError(err, `rename into ${display}`);
    });
  }

  /** Restore `path` of the volume into `out` ('/' or a folder restores its contents... see getItems). */
  async item(path: string, top: { dir: ConfinedDir; seen: Set<string> }): Promise<void> {
    // Open folders, by relative output path, from the item's top down; each with the names it got in this run.
    const stack: Array<{ dir: ConfinedDir; seen: Set<string>; rel: string; entry?: DirEntry }> = [{ ...top, rel: '' }];
    try {
      for await (const ev of walkTree(this.#fs, path, this.#opts)) {
        this.#cancelled();
        if (ev.type === 'leave') {
          if (ev.parts.length === 0) continue; // the volume root: `out` itself stays open
          const done = stack.pop()!;
          if (done.entry) await done.dir.setAttributes({ mode: fileMode(done.entry, 0o755), ...timesOf(done.entry) });
          await done.dir.sync();
          await done.dir.close();
          continue;
        }
        if (ev.parts.length === 0) continue; // the root of the volume: its contents go straight into out
        const parent = stack[stack.length - 1]!;
        if (ev.type === 'unaddressable') {
          this.skipped.push({ path: ev.path, reason: `its name ${JSON.stringify(ev.entry.name)} cannot be part of a path in the file system` });
          continue;
        }
        const e = ev.entry;
        if (e.type === 'other') {
          this.skipped.push({ path: ev.path, reason: 'not a file, folder or symbolic link (device, FIFO or socket)' });
          continue;
        }
        const name = this.#name(parent.seen, ev.path, e.name, parent.rel);
        if (name === undefined) {
          if (e.type === 'directory') throw new SvError('SV_ERR_FILES_DIRECTORY_LOOP', `${ev.path}: a second folder of the same name in one folder; the file system is damaged`, { path: ev.path });
          continue;
        }
        const rel = parent.rel ? `${parent.rel}/${name}` : name;
        if (e.type === 'directory') {
          await this.#refuseExisting(parent.dir, name, join(this.#out, rel), true);
          stack.push({ dir: await this.#openDir(rel), seen: new Set(), rel, entry: e });
          this.directories++;
        } else if (e.type === 'symlink') {
          await this.#writeSymlink(parent.dir, name, join(this.#out, rel), e);
          this.symlinks++;
        } else {
          await this.#writeFile(parent.dir, name, join(this.#out, rel), ev.path, e);
          this.files++;
          if (this.#opts.streams) {
            for (const s of await this.#fs.streams(ev.path)) {
              const sname = this.#name(parent.seen, `${ev.path}:${s.name}`, `${e.name}:${s.name}`, parent.rel);
              if (sname === undefined) continue;
              await this.#writeFile(parent.dir, sname, join(this.#out, parent.rel, sname), ev.path, e, s.name);
              this.streams++;
            }
          }
        }
      }
    } finally {
      for (const s of stack.slice(1)) await s.dir.close();
    }
  }
}

/**
 * Restore `paths` (volume paths) of `fs` into `opts.out`: a file as `out/<name>`, a folder as `out/<name>/...`,
 * the root '/' as the contents of `out`.
 */
export async function getItems(fs: FileSystem, paths: readonly string[], opts: GetOptions): Promise<GetResult> {
  const t0 = Date.now();
  const out = resolve(opts.out);
  if (!opts.confine) {
    const st = await stat(out).catch(() => undefined);
    if (st && !st.isDirectory()) throw new SvError('SV_ERR_FILES_BAD_TARGET', `--out ${out} exists and is not a folder`, { path: out });
    if (!st) await mkdir(out, { recursive: true }).catch((err: unknown) => { throw wrapSystemError(err, `create ${out}`); });
  } else if (!isAbsolute(opts.out)) {
    throw new SvError('SV_ERR_FILES_BAD_TARGET', `${opts.out}: the target folder must be an absolute path`, { path: opts.out });
  }
  const x = new Extractor(fs, opts, out);
  const top = await ConfinedDir.open(out, opts.confine ?? [out], { create: true });
  const seen = new Set<string>();
  try {
    // Refuse up front when a top-level file is in the way (the common case fails before anything is written).
    if (!opts.force) {
      for (const p of paths) {
        const e = await fs.stat(p);
        if (p === '/' || e.type === 'directory') continue;
        const { name } = escapeName(e.name);
        if (await lstat(top.at(name)).then(() => true, () => false)) throw new SvError('SV_ERR_FILES_EXISTS', `${join(out, name)} exists (ask to overwrite it with --force)`, { path: join(out, name) });
      }
    }
    for (const p of paths) await x.item(p, { dir: top, seen });
    if (Object.keys(x.shortened).length) {
      await writeFile(top.at(NAMES_FILE), `${JSON.stringify(x.shortened, null, 1)}\n`).catch((err: unknown) => { throw wrapSystemError(err, `write ${join(out, NAMES_FILE)}`); });
    }
    await top.sync();
  } finally {
    await top.close();
  }
  return {
    out, files: x.files, directories: x.directories, symlinks: x.symlinks, streams: x.streams, bytes: x.bytes, renamed: x.renamed, renamedCount: x.renamedCount,
    skipped: x.skipped, durationMs: Date.now() - t0,
  };
}
