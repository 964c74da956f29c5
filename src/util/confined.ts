/**
 * Confined file access: files the appliance writes (restores) or reads (source disks) must lie under one of
 * a set of roots, checked when the file is OPENED, not when a request arrives, so that swapping a folder for
 * a symbolic link between the API's check and the job cannot send a job outside (issue 9, D3 and D7).
 *
 * How (Linux; Node has no openat/renameat): `/proc/self/fd/<dirfd>/<name>` resolves `name` inside the folder
 * the descriptor holds, whatever happened to that folder's path since it was opened. So:
 *
 * - `ConfinedDir.open(dir, roots, {create})` opens the root `dir` lies under (the longest matching root; the
 *   root itself is admin configuration and may be a symbolic link), then every component of `dir` below it
 *   with O_DIRECTORY|O_NOFOLLOW through the descriptor of the folder above (creating missing ones with mkdir
 *   through that descriptor when `create`). A symbolic link anywhere below the root refuses. The descriptor
 *   held at the end must have its real path (readlink /proc/self/fd/N) inside the root's real path.
 * - `dir.at(name)` is a path naming `name` (one component) in that very folder: use it for open with
 *   O_CREAT|O_EXCL (which never follows a symbolic link), rename (renameat within the checked folder),
 *   unlink, lstat. Writers given such a path need no other change.
 * - `dir.check()` re-checks the folder's real path (it may have been moved since): call it before the first
 *   write and before the final rename; `dir.sync()` fsyncs the folder; `close()` releases the descriptor.
 * - `assertOpenedInside(fd, path, roots)` checks a descriptor opened for reading: its real path must lie
 *   inside a root that is a folder, or be the real path of a root that names a block device (devices are
 *   allowed only when listed themselves, never because they sit in a listed folder such as /dev).
 *
 * Every refusal is SV_ERR_API_PATH_NOT_ALLOWED naming the path, what was found and the roots. Without roots
 * (the CLI's local commands) nothing here is used and paths are opened as given.
 */
import { constants, fstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, type FileHandle } from 'node:fs/promises';
import { isAbsolute, normalize, relative, sep } from 'node:path';
import { SvError, wrapSystemError } from '../errors/index.js';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

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

/** The real path behind an open descriptor ("... (deleted)" when it was removed). */
export function fdRealPath(fd: number): string {
  return readlinkSync(`/proc/self/fd/${fd}`);
}

/**
 * Throws SV_ERR_API_PATH_NOT_ALLOWED unless the file open as `fd` (opened from `path`) lies inside a folder
 * root, or is the block device a root names.
 */
export function assertOpenedInside(fd: number, path: string, roots: readonly string[]): void {
  const real = fdRealPath(fd);
  const device = fstatSync(fd).isBlockDevice();
  for (const root of roots) {
    let rootReal: string;
    let rootIsDevice: boolean;
    try {
      rootReal = realpathSync(root);
      rootIsDevice = statSync(rootReal).isBlockDevice();
    } catch {
      continue; // a root that does not exist (yet) holds nothing
    }
    if (device ? rootIsDevice && real === rootReal : !rootIsDevice && isInside(real, rootReal)) return;
  }
  refuse(path, device ? `it is a block device (${real}) that no --source-root names` : `it resolves to ${real}, outside every root`, roots, real);
}

/** A folder under a root, held open by descriptor; see the top comment. */
export class ConfinedDir {
  /** The folder as asked for (for messages). */
  readonly path: string;
  readonly #root: string;
  readonly #roots: readonly string[];
  #fh: FileHandle | undefined;

  private constructor(path: string, root: string, roots: readonly string[], fh: FileHandle) {
    this.path = path;
    this.#root = root;
    this.#roots = roots;
    this.#fh = fh;
  }

  /** Open `dir` (absolute, normalised) under the longest root containing it; `create` makes missing folders (mode 0750). */
  static async open(dir: string, roots: readonly string[], options: { create?: boolean } = {}): Promise<ConfinedDir> {
    if (!isAbsolute(dir) || normalize(dir) !== dir || dir.includes('\0')) refuse(dir, 'it must be an absolute, normalised path', roots);
    const root = [...roots].filter((r) => isInside(dir, r)).sort((a, b) => b.length - a.length)[0];
    if (root === undefined) refuse(dir, 'it is not inside a root', roots);
    if (options.create) await mkdir(root, { recursive: true, mode: 0o750 }).catch((err: unknown) => { throw wrapSystemError(err, `create root ${root}`); });
    let rootReal: string;
    let fh: FileHandle;
    try {
      rootReal = realpathSync(root);
      fh = await open(rootReal, DIR_FLAGS);
    } catch (err) {
      throw wrapSystemError(err, `open root ${root}`);
    }
    try {
      for (const name of relative(root, dir).split(sep).filter(Boolean)) {
        const at = `/proc/self/fd/${fh.fd}/${name}`;
        let next = await open(at, DIR_FLAGS).catch((err: unknown) => err as NodeJS.ErrnoException);
        if (!(next instanceof Error)) {
          await fh.close();
          fh = next;
          continue;
        }
        if (next.code === 'ENOENT' && options.create) {
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
    const d = new ConfinedDir(dir, rootReal, roots, fh);
    try {
      d.check();
    } catch (err) {
      await d.close();
      throw err;
    }
    return d;
  }

  #handle(): FileHandle {
    if (!this.#fh) throw new SvError('SV_ERR_CORE_INTERNAL', `${this.path}: confined folder used after close`, { path: this.path });
    return this.#fh;
  }

  /** A path naming `name` inside this very folder (see the top comment). */
  at(name: string): string {
    if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) refuse(`${this.path}/${name}`, 'a file name must be one path component', this.#roots);
    return `/proc/self/fd/${this.#handle().fd}/${name}`;
  }

  /** Throws SV_ERR_API_PATH_NOT_ALLOWED when the folder now lies outside its root (it was moved). */
  check(): void {
    const real = fdRealPath(this.#handle().fd);
    if (!isInside(real, this.#root)) refuse(this.path, `the folder now resolves to ${real}, outside its root ${this.#root}`, this.#roots, real);
  }

  /** The folder's entries (types as stored: a symbolic link is a link, not what it points to). */
  async list(): Promise<Dirent[]> {
    return readdir(`/proc/self/fd/${this.#handle().fd}`, { withFileTypes: true }).catch((err: unknown) => { throw wrapSystemError(err, `list ${this.path}`); });
  }

  /** Set the folder's permission bits and/or access and modification times. */
  async setAttributes(attrs: { mode?: number; atime?: Date; mtime?: Date }): Promise<void> {
    const fh = this.#handle();
    try {
      if (attrs.mode !== undefined) await fh.chmod(attrs.mode);
      if (attrs.atime && attrs.mtime) await fh.utimes(attrs.atime, attrs.mtime);
    } catch (err) {
      throw wrapSystemError(err, `set attributes of ${this.path}`);
    }
  }

  /** fsync the folder (renames and unlinks in it become durable). */
  async sync(): Promise<void> {
    await this.#handle().sync().catch((err: unknown) => { throw wrapSystemError(err, `fsync folder ${this.path}`); });
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => undefined);
  }
}
