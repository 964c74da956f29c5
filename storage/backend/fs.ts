/**
 * FsBackend: the volume store as a local folder, byte for byte the layout of storage/layout.ts (key K is the
 * file <dir>/K; the key's segments are folders). The contract is in types.ts; how this backend keeps it:
 *
 * - put (create-only): the bytes are written to a temporary file `<K>.tmp-<pid>-<random>` in K's folder and
 *   fsynced, then hard-linked to K (link(2) fails with EEXIST when K exists: of concurrent puts exactly one
 *   wins, and nobody ever sees a partial K), the temporary is unlinked and the folder fsynced. A `{file}` body
 *   is fsynced and linked into place directly when it lies on the same filesystem (then unlinked: the caller's
 *   file moves), else copied through a temporary like bytes. A crash leaves at worst a temporary (or, for a
 *   moved file, the caller's own staging file), which `cleanup` removes.
 * - replace: atomicWrite (temporary, fsync, rename over K, folder fsync).
 * - get/getRange/stat: refuse anything but a regular file (a FIFO, folder or link planted under a key's name is
 *   SV_ERR_STORE_FOREIGN_FILE, never opened for reading). getRange keeps up to 64 files open (an LRU of handles
 *   shared by concurrent readers; a handle in use is closed when its last reader is done) so a restore that
 *   reads one pack block by block does not open it for every block.
 * - list: readdir recursion below the prefix's folder; temporaries and names that are not keys are skipped.
 *   What is not a regular file but sits where an object would (a FIFO, a link, a socket, and a folder named
 *   like an object: `*.json`, `*.idx`, `*.pack`, `*.bin`, which the layout never uses for folders) is listed
 *   too, so that the store sees it and reports it (reading it throws SV_ERR_STORE_FOREIGN_FILE); it is never
 *   opened for reading.
 * - createdMs is the file's mtime (a pack is written once, so its mtime is when it was completed).
 * - delete: unlink, then fsync the folder (a delete is durable when it resolves: gc deletes a pack only after
 *   the segments naming it are durably gone).
 * - cleanup: temporaries (fsutil isTempName) anywhere in the folder tree whose mtime is older than the cutoff.
 *
 * Locks (storage/lock.ts) are files in <dir>/locks/ and are not objects of this backend.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { copyFile, link, lstat, mkdir, open, readdir, rm, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SvError, wrapSystemError } from '../../src/errors/index.js';
import { atomicWrite, foreignFile, fsyncDir, isMissing, isTempName, readStoreFile, TMP_MARK } from '../fsutil.js';
import { checkKey, checkPrefix, exists, isValidKey, MAX_KEY_SEGMENTS, notFound, shortRead } from './keys.js';
import type { Backend, FsBackendRef, ObjectBody, ObjectInfo } from './types.js';

const MAX_OPEN = 64;
/** Names the layout gives objects only: a folder named so is a foreign entry, listed (not descended). */
const OBJECT_NAME_RE = /\.(json|idx|pack|bin)$/;

interface Handle {
  fh: FileHandle;
  users: number;
  evicted: boolean;
}

export class FsBackend implements Backend {
  readonly ref: FsBackendRef;
  readonly location: string;
  readonly dir: string;
  /** Open handles for getRange, least recently used first (Map keeps insertion order). */
  #handles = new Map<string, Promise<Handle>>();
  #closed = false;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.ref = { kind: 'fs', dir: this.dir };
    this.location = this.dir;
  }

  /** The file of a key (the key is checked first). */
  pathOf(key: string): string {
    return join(this.dir, checkKey(key));
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    const path = this.pathOf(key);
    const folder = dirname(path);
    await mkdir(folder, { recursive: true }).catch((err: unknown) => {
      throw wrapSystemError(err, `create folder ${folder}`);
    });
    if (!(body instanceof Uint8Array)) {
      if (await this.#linkFile(key, path, body.file)) return;
    }
    const tmp = `${path}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      if (body instanceof Uint8Array) {
        const fh = await open(tmp, 'wx', 0o644);
        try {
          await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
      } else {
        await copyFile(body.file, tmp, constants.COPYFILE_EXCL);
        await syncFile(tmp);
      }
      await this.#linkInto(key, tmp, path);
    } catch (err) {
      throw wrapSystemError(err, `put ${path}`);
    } finally {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
    if (!(body instanceof Uint8Array)) await rm(body.file, { force: true }).catch(() => undefined);
    await fsyncDir(folder);
  }

  /** A `{file}` body on this filesystem: fsync it and link it into place. False: another filesystem (copy). */
  async #linkFile(key: string, path: string, file: string): Promise<boolean> {
    try {
      await syncFile(file);
      await this.#linkInto(key, file, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') return false;
      throw wrapSystemError(err, `put ${path} from ${file}`);
    }
    await unlink(file).catch(() => undefined);
    await fsyncDir(dirname(path));
    return true;
  }

  async #linkInto(key: string, from: string, path: string): Promise<void> {
    try {
      await link(from, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw exists(this.location, key);
      throw err;
    }
  }

  async replace(key: string, body: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
      throw wrapSystemError(err, `create folder ${dirname(path)}`);
    });
    this.#forget(key);
    await atomicWrite(path, Buffer.from(body.buffer, body.byteOffset, body.length), 0o644);
  }

  async get(key: string): Promise<Buffer> {
    const path = this.pathOf(key);
    try {
      return await readStoreFile(path);
    } catch (err) {
      if (isMissing(err)) throw notFound(this.location, key, err);
      throw err;
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const path = this.pathOf(key);
    checkRange(key, offset, length);
    const h = await this.#acquire(key, path);
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await h.fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < length) {
        const size = (await h.fh.stat()).size;
        throw shortRead(this.location, key, offset, length, size);
      }
      return buf;
    } catch (err) {
      throw wrapSystemError(err, `read ${path}`);
    } finally {
      this.#release(h);
    }
  }

  async #acquire(key: string, path: string): Promise<Handle> {
    if (this.#closed) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `${this.location}: backend is closed`, {});
    let p = this.#handles.get(key);
    if (p) {
      this.#handles.delete(key); // re-insert: most recently used last
      this.#handles.set(key, p);
    } else {
      p = this.#openHandle(key, path);
      this.#handles.set(key, p);
      p.catch(() => this.#handles.get(key) === p && this.#handles.delete(key));
      while (this.#handles.size > MAX_OPEN) {
        const [oldKey, old] = this.#handles.entries().next().value as [string, Promise<Handle>];
        this.#handles.delete(oldKey);
        void old.then((h) => this.#evict(h), () => undefined);
      }
    }
    const h = await p;
    h.users++;
    return h;
  }

  async #openHandle(key: string, path: string): Promise<Handle> {
    let fh: FileHandle;
    try {
      // O_NONBLOCK: a FIFO planted under a key's name cannot block the open; it is refused below.
      fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw notFound(this.location, key, err);
      if (code === 'ELOOP' || code === 'ENXIO' || code === 'EISDIR') throw foreignFile(path, code === 'ELOOP' ? 'a symbolic link' : 'not a regular file');
      throw wrapSystemError(err, `open ${path}`);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw foreignFile(path, st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a folder' : 'not a regular file');
    }
    return { fh, users: 0, evicted: false };
  }

  #release(h: Handle): void {
    h.users--;
    if (h.evicted && h.users === 0) void h.fh.close().catch(() => undefined);
  }

  #evict(h: Handle): void {
    h.evicted = true;
    if (h.users === 0) void h.fh.close().catch(() => undefined);
  }

  /** Forget the cached handle of a key (deleted or replaced). */
  #forget(key: string): void {
    const p = this.#handles.get(key);
    if (!p) return;
    this.#handles.delete(key);
    void p.then((h) => this.#evict(h), () => undefined);
  }

  async stat(key: string): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      if (isMissing(err)) throw notFound(this.location, key, err);
      throw wrapSystemError(err, `stat ${path}`);
    }
    if (!st.isFile()) throw foreignFile(path, st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : 'not a regular file');
    return { key, size: st.size, createdMs: st.mtimeMs };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    const cut = prefix.lastIndexOf('/');
    const base = cut < 0 ? '' : prefix.slice(0, cut);
    yield* this.#walk(base, prefix, base === '' ? 0 : base.split('/').length);
  }

  async *#walk(rel: string, prefix: string, depth: number): AsyncIterable<ObjectInfo> {
    const folder = rel ? join(this.dir, rel) : this.dir;
    let entries: Dirent[];
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw wrapSystemError(err, `list ${folder}`);
    }
    for (const e of entries) {
      const key = rel ? `${rel}/${e.name}` : e.name;
      if (isTempName(e.name) || !isValidKey(key)) continue;
      if (e.isDirectory() && !OBJECT_NAME_RE.test(e.name)) {
        if (depth + 1 < MAX_KEY_SEGMENTS && (key.startsWith(prefix) || prefix.startsWith(`${key}/`))) yield* this.#walk(key, prefix, depth + 1);
        continue;
      }
      if (!key.startsWith(prefix)) continue;
      let st;
      try {
        st = await lstat(join(folder, e.name));
      } catch (err) {
        if (isMissing(err)) continue; // deleted meanwhile
        throw wrapSystemError(err, `stat ${join(folder, e.name)}`);
      }
      yield { key, size: st.isFile() ? st.size : 0, createdMs: st.mtimeMs };
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    this.#forget(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isMissing(err)) return;
      throw wrapSystemError(err, `delete ${path}`);
    }
    await fsyncDir(dirname(path));
  }

  async cleanup(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    return this.#cleanDir(this.dir, cutoff, 0);
  }

  async #cleanDir(folder: string, cutoff: number, depth: number): Promise<number> {
    let entries: Dirent[];
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return 0;
      throw wrapSystemError(err, `list ${folder}`);
    }
    let removed = 0;
    for (const e of entries) {
      const path = join(folder, e.name);
      if (e.isDirectory()) {
        if (depth + 1 < MAX_KEY_SEGMENTS) removed += await this.#cleanDir(path, cutoff, depth + 1);
        continue;
      }
      if (!e.isFile() || !isTempName(e.name)) continue;
      const st = await lstat(path).catch(() => undefined);
      if (!st || !st.isFile() || st.mtimeMs >= cutoff) continue;
      await unlink(path).then(() => removed++, (err: unknown) => {
        if (!isMissing(err)) throw wrapSystemError(err, `remove ${path}`);
      });
    }
    return removed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#handles.values()];
    this.#handles.clear();
    for (const p of all) await p.then((h) => this.#evict(h), () => undefined);
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}


/** Offsets and lengths are non-negative safe integers (a programming error otherwise). */
export function checkRange(key: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `${key}: bad range offset ${offset} length ${length}`, { key, offset, length });
  }
}
