/**
 * Confined file access: files the appliance writes (restores) or reads (source disks) must lie under one of
 * a set of roots, checked when the file is OPENED, not when a request arrives, so that swapping a folder for
 * a symbolic link between the API's check and the job cannot send a job outside (issue 9, D3 and D7).
 *
 * Two ways of holding a folder, chosen by platform (`confinementFor`); callers see one interface:
 *
 * 'proc-fd' (Linux; Node has no openat/renameat): `/proc/self/fd/<dirfd>/<name>` resolves `name` inside the
 * folder the descriptor holds, whatever happened to that folder's path since it was opened. So:
 * - `ConfinedDir.open(dir, roots, {create})` opens the root `dir` lies under (the longest matching root; the
 *   root itself is admin configuration and may be a symbolic link), then every component of `dir` below it
 *   with O_DIRECTORY|O_NOFOLLOW through the descriptor of the folder above (creating missing ones with mkdir
 *   through that descriptor when `create`). A symbolic link anywhere below the root refuses. The descriptor
 *   held at the end must have its real path (readlink /proc/self/fd/N) inside the root's real path.
 * - `dir.at(name)` is a path naming `name` (one component) in that very folder: use it for open with
 *   O_CREAT|O_EXCL (which never follows a symbolic link), rename (renameat within the checked folder),
 *   unlink, lstat. Writers given such a path need no other change.
 *
 * 'path-walk' (Windows, where a Hyper-V agent runs; any platform without /proc/self/fd). Node on Windows has
 * no descriptor-relative names, and cannot open a folder, so the folder is named by its checked path:
 * - open: the root's real path (`fs.realpath.native`, i.e. GetFinalPathNameByHandle), then each component
 *   below it lstat'ed (created with a plain, non-recursive mkdir when `create`): each must be a folder and
 *   not a link. On Windows, lstat reports symbolic links AND junctions (mount points) as links, so neither
 *   is followed. The folder's identity (dev + 64-bit file id) is recorded.
 * - `check()` repeats that walk and also requires realpath.native of the folder inside the root's real path
 *   and the same identity as at open: a folder replaced by a link or junction, moved away, or swapped for
 *   another folder refuses.
 * - `dir.at(name)` is the checked folder's path joined with `name` (one component; on this path also no
 *   `\` and no `:`, which would name an NTFS alternate data stream).
 * - `verifyOpened(fd, name)`, after creating a file with O_EXCL through `at(name)` (CREATE_NEW on Windows),
 *   re-checks the folder and requires the descriptor's file identity to equal the identity of the file now
 *   at `at(name)`: a file created through a component swapped for a junction between the check and the
 *   open is another file and refuses.
 *   What remains in this mode (and not in 'proc-fd'): a swap of a component for a junction and back, both
 *   between two checks, can make ONE create/rename go outside once; it is then detected by the next check
 *   (`verifyOpened`, `check()` before the final rename), and the job fails. Creating a junction needs write
 *   access to a folder below the restore root, which only the administrator has.
 * - `sync()` fsyncs the folder on Linux; Windows cannot open a folder for FlushFileBuffers from Node, and
 *   NTFS journals its metadata, so it is a no-op there.
 *
 * Both modes:
 * - `dir.check()` re-checks the folder's real path (it may have been moved since): call it before the first
 *   write and before the final rename; `dir.sync()` fsyncs the folder; `close()` releases the descriptor.
 * - `assertOpenedInside(fd, path, roots)` checks a descriptor opened for reading: its real path must lie
 *   inside a root that is a folder, or be the real path of a root that names a block device (devices are
 *   allowed only when listed themselves, never because they sit in a listed folder such as /dev). In
 *   'path-walk' the real path is realpath.native(path), and the descriptor's identity must equal that file's.
 *
 * Every refusal is SV_ERR_API_PATH_NOT_ALLOWED naming the path, what was found and the roots. Without roots
 * (the CLI's local commands) nothing here is used and paths are opened as given.
 * Tests: test/util/confined.test.ts runs every case in both modes on Linux (same code; on Windows only the
 * junction/link answer of lstat differs, which libuv reports as a link, S_IFLNK, for both).
 */
import { constants, fstatSync, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import type { BigIntStats, Dirent } from 'node:fs';
import { chmod, mkdir, open, readdir, utimes, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { SvError, wrapSystemError } from '../errors/index.js';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** How folders are held (see the top comment). */
export type ConfineMode = 'proc-fd' | 'path-walk';

/** 'proc-fd' on Linux (it has /proc/self/fd), 'path-walk' everywhere else (Windows). */
export function confinementFor(platform: string): ConfineMode {
  return platform === 'linux' ? 'proc-fd' : 'path-walk';
}

const PLATFORM_MODE = confinementFor(process.platform);

export interface ConfineOptions {
  /** Make missing folders below the root (mode 0750). */
  readonly create?: boolean;
  /** Default: confinementFor(process.platform). Tests run 'path-walk' on Linux with this (the same code). */
  readonly mode?: ConfineMode;
}

/** Is `child` equal to or below `root` (both absolute, normalised)? */
export function isInside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function refuse(path: string, why: string, roots: readonly string[], found?: string): never {
  throw new SvError('SV_ERR_API_PATH_NOT_ALLOWED', `${path} refused: ${why} (allowed roots: ${roots.join(', ') || 'none'})`, {
    path, found: found ?? null, allowedRoots: [...roots],
  });
}

/** The real path behind an open descriptor ("... (deleted)" when it was removed). Linux only. */
export function fdRealPath(fd: number): string {
  return readlinkSync(`/proc/self/fd/${fd}`);
}

/** Same file: device and 64-bit file id (BigInt stats: Windows file ids exceed 2^53). */
function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * Throws SV_ERR_API_PATH_NOT_ALLOWED unless the file open as `fd` (opened from `path`) lies inside a folder
 * root, or is the block device a root names.
 */
export function assertOpenedInside(fd: number, path: string, roots: readonly string[], mode: ConfineMode = PLATFORM_MODE): void {
  let real: string;
  if (mode === 'proc-fd') {
    real = fdRealPath(fd);
  } else {
    // No path of a descriptor here: the path's real path, and the descriptor must be that very file.
    try {
      real = realpathSync.native(path);
      if (!sameFile(fstatSync(fd, { bigint: true }), statSync(real, { bigint: true }))) refuse(path, `the file opened is no longer the file at ${real}`, roots, real);
    } catch (err) {
      if (err instanceof SvError) throw err;
      refuse(path, `its real path cannot be checked: ${(err as Error).message}`, roots);
    }
  }
  const device = fstatSync(fd).isBlockDevice();
  for (const root of roots) {
    let rootReal: string;
    let rootIsDevice: boolean;
    try {
      rootReal = realpathSync.native(root);
      rootIsDevice = statSync(rootReal).isBlockDevice();
    } catch {
      continue; // a root that does not exist (yet) holds nothing
    }
    if (device ? rootIsDevice && real === rootReal : !rootIsDevice && isInside(real, rootReal)) return;
  }
  refuse(path, device ? `it is a block device (${real}) that no --source-root names` : `it resolves to ${real}, outside every root`, roots, real);
}

/** Names Windows maps to devices in every folder (with any extension). */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/iu;

/** What holds the folder: a descriptor ('proc-fd'), or its checked path and identity ('path-walk'). */
type Hold = { readonly mode: 'proc-fd'; fh: FileHandle } | { readonly mode: 'path-walk'; readonly real: string; readonly names: readonly string[]; readonly id: BigIntStats };

/** The components of `dir` below `root`. */
function below(dir: string, root: string): string[] {
  return relative(root, dir).split(sep).filter(Boolean);
}

/** A folder under a root, held open by descriptor or by checked path; see the top comment. */
export class ConfinedDir {
  /** The folder as asked for (for messages). */
  readonly path: string;
  readonly #root: string;
  readonly #roots: readonly string[];
  #hold: Hold | undefined;

  private constructor(path: string, root: string, roots: readonly string[], hold: Hold) {
    this.path = path;
    this.#root = root;
    this.#roots = roots;
    this.#hold = hold;
  }

  /** Open `dir` (absolute, normalised) under the longest root containing it; `create` makes missing folders (mode 0750). */
  static async open(dir: string, roots: readonly string[], options: ConfineOptions = {}): Promise<ConfinedDir> {
    if (!isAbsolute(dir) || normalize(dir) !== dir || dir.includes('\0')) refuse(dir, 'it must be an absolute, normalised path', roots);
    const root = [...roots].filter((r) => isInside(dir, r)).sort((a, b) => b.length - a.length)[0];
    if (root === undefined) refuse(dir, 'it is not inside a root', roots);
    if (options.create) await mkdir(root, { recursive: true, mode: 0o750 }).catch((err: unknown) => { throw wrapSystemError(err, `create root ${root}`); });
    let rootReal: string;
    try {
      rootReal = realpathSync.native(root);
    } catch (err) {
      throw wrapSystemError(err, `open root ${root}`);
    }
    const hold = (options.mode ?? PLATFORM_MODE) === 'proc-fd'
      ? await openByDescriptor(dir, root, rootReal, roots, options.create === true)
      : await openByPath(dir, root, rootReal, roots, options.create === true);
    const d = new ConfinedDir(dir, rootReal, roots, hold);
    try {
      d.check();
    } catch (err) {
      await d.close();
      throw err;
    }
    return d;
  }

  #held(): Hold {
    if (!this.#hold) throw new SvError('SV_ERR_CORE_INTERNAL', `${this.path}: confined folder used after close`, { path: this.path });
    return this.#hold;
  }

  /** The mode this folder is held in. */
  get mode(): ConfineMode {
    return this.#held().mode;
  }

  /** A path naming `name` inside this very folder (see the top comment). */
  at(name: string): string {
    const h = this.#held();
    if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) refuse(`${this.path}/${name}`, 'a file name must be one path component', this.#roots);
    if (h.mode === 'proc-fd') return `/proc/self/fd/${h.fh.fd}/${name}`;
    if (name.includes('\\') || name.includes(':')) refuse(`${this.path}/${name}`, 'a file name must be one path component (no \\ and no : stream name)', this.#roots);
    if (/[. ]$/u.test(name) || WINDOWS_DEVICE.test(name)) refuse(`${this.path}/${name}`, 'Windows would not name a file in the folder by it (a trailing dot or space is dropped; CON, NUL, COM1… name devices)', this.#roots);
    return join(h.real, name);
  }

  /** Throws SV_ERR_API_PATH_NOT_ALLOWED when the folder now lies outside its root (it was moved or replaced). */
  check(): void {
    const h = this.#held();
    if (h.mode === 'proc-fd') {
      const real = fdRealPath(h.fh.fd);
      if (!isInside(real, this.#root)) refuse(this.path, `the folder now resolves to ${real}, outside its root ${this.#root}`, this.#roots, real);
      return;
    }
    const id = walkChecked(this.path, this.#root, h.names, this.#roots);
    let real: string;
    try {
      real = realpathSync.native(h.real);
    } catch (err) {
      refuse(this.path, `the folder cannot be resolved any more: ${(err as Error).message}`, this.#roots);
    }
    if (!isInside(real, this.#root)) refuse(this.path, `the folder now resolves to ${real}, outside its root ${this.#root}`, this.#roots, real);
    if (!sameFile(id, h.id)) refuse(this.path, 'the folder was replaced by another one since it was opened', this.#roots, real);
  }

  /**
   * After opening (creating) `at(name)` as `fd`: the folder is still inside its root and `fd` is the very file
   * now at `at(name)` (not one created through a component swapped meanwhile). Throws SV_ERR_API_PATH_NOT_ALLOWED.
   */
  verifyOpened(fd: number, name: string): void {
    this.check();
    let here: BigIntStats | undefined;
    try {
      here = lstatSync(this.at(name), { bigint: true });
    } catch { /* refused below */ }
    if (!here || !sameFile(fstatSync(fd, { bigint: true }), here)) refuse(`${this.path}/${name}`, 'the file opened is not the file in the confined folder', this.#roots);
  }

  /** The folder's entries (types as stored: a symbolic link is a link, not what it points to). */
  async list(): Promise<Dirent[]> {
    const h = this.#held();
    return readdir(h.mode === 'proc-fd' ? `/proc/self/fd/${h.fh.fd}` : h.real, { withFileTypes: true }).catch((err: unknown) => { throw wrapSystemError(err, `list ${this.path}`); });
  }

  /** Set the folder's permission bits and/or access and modification times. */
  async setAttributes(attrs: { mode?: number; atime?: Date; mtime?: Date }): Promise<void> {
    const h = this.#held();
    try {
      if (h.mode === 'path-walk') this.check();
      if (attrs.mode !== undefined) await (h.mode === 'proc-fd' ? h.fh.chmod(attrs.mode) : chmod(h.real, attrs.mode));
      if (attrs.atime && attrs.mtime) await (h.mode === 'proc-fd' ? h.fh.utimes(attrs.atime, attrs.mtime) : utimes(h.real, attrs.atime, attrs.mtime));
    } catch (err) {
      throw err instanceof SvError ? err : wrapSystemError(err, `set attributes of ${this.path}`);
    }
  }

  /** fsync the folder (renames and unlinks in it become durable); a no-op on Windows (see the top comment). */
  async sync(): Promise<void> {
    const h = this.#held();
    if (h.mode === 'path-walk' && process.platform === 'win32') return;
    const fh = h.mode === 'proc-fd' ? h.fh : await open(h.real, DIR_FLAGS).catch((err: unknown) => { throw wrapSystemError(err, `open folder ${this.path}`); });
    try {
      await fh.sync().catch((err: unknown) => { throw wrapSystemError(err, `fsync folder ${this.path}`); });
    } finally {
      if (h.mode === 'path-walk') await fh.close();
    }
  }

  async close(): Promise<void> {
    const h = this.#hold;
    this.#hold = undefined;
    if (h?.mode === 'proc-fd') await h.fh.close().catch(() => undefined);
  }
}

/** 'proc-fd': each component opened O_NOFOLLOW through the descriptor of the folder above. */
async function openByDescriptor(dir: string, root: string, rootReal: string, roots: readonly string[], create: boolean): Promise<Hold> {
  let fh: FileHandle;
  try {
    fh = await open(rootReal, DIR_FLAGS);
  } catch (err) {
    throw wrapSystemError(err, `open root ${root}`);
  }
  try {
    for (const name of below(dir, root)) {
      const at = `/proc/self/fd/${fh.fd}/${name}`;
      let next = await open(at, DIR_FLAGS).catch((err: unknown) => err as NodeJS.ErrnoException);
      if (!(next instanceof Error)) {
        await fh.close();
        fh = next;
        continue;
      }
      if (next.code === 'ENOENT' && create) {
        await mkdir(at, { mode: 0o750 }).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw wrapSystemError(err, `create ${dir}`);
        });
        next = await open(at, DIR_FLAGS).catch((err: unknown) => err as NodeJS.ErrnoException);
        if (!(next instanceof Error)) {
          await fh.close();
          fh = next;
          continue;
        }
      }
      if (next.code === 'ENOTDIR' || next.code === 'ELOOP') refuse(dir, `"${name}" is a symbolic link or not a folder`, roots);
      throw wrapSystemError(next, `open ${dir}`);
    }
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { mode: 'proc-fd', fh };
}

/** 'path-walk': each component lstat'ed (made when `create`): a folder, never a link or junction. */
async function openByPath(dir: string, root: string, rootReal: string, roots: readonly string[], create: boolean): Promise<Hold> {
  const names = below(dir, root);
  let at = rootReal;
  for (const name of names) {
    at = join(at, name);
    let st = lstatIfAny(at);
    if (!st && create) {
      await mkdir(at, { mode: 0o750 }).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw wrapSystemError(err, `create ${dir}`);
      });
      st = lstatIfAny(at);
    }
    if (!st) {
      try {
        st = lstatSync(at, { bigint: true }); // gone since: the system's own ENOENT
      } catch (err) {
        throw wrapSystemError(err, `open ${dir}`);
      }
    }
    if (st.isSymbolicLink() || !st.isDirectory()) refuse(dir, `"${name}" is a symbolic link, a junction or not a folder`, roots);
  }
  return { mode: 'path-walk', real: at, names, id: walkChecked(dir, rootReal, names, roots) };
}

function lstatIfAny(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw wrapSystemError(err, `lstat ${path}`);
  }
}

/** Every component below the root's real path is a folder and no link; returns the last one's stats. */
function walkChecked(dir: string, rootReal: string, names: readonly string[], roots: readonly string[]): BigIntStats {
  let at = rootReal;
  let st = lstatIfAny(at);
  if (!st?.isDirectory()) refuse(dir, `its root ${rootReal} is not a folder any more`, roots);
  for (const name of names) {
    at = join(at, name);
    st = lstatIfAny(at);
    if (!st) refuse(dir, `"${name}" is gone (the folder was moved or removed)`, roots);
    if (st.isSymbolicLink() || !st.isDirectory()) refuse(dir, `"${name}" is a symbolic link, a junction or not a folder`, roots);
  }
  return st;
}
