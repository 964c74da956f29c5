/**
 * Durable file primitives used by every store module. The one rule: a file the store names is only ever
 * created by writing a temp file in the same folder, fsyncing it, renaming it into place and fsyncing the
 * folder. Readers therefore see either nothing or a complete file; a crash leaves at worst `*.tmp-*` files,
 * which gc removes.
 */
import { constants } from 'node:fs';
import { open, readdir, unlink } from 'node:fs/promises';
import { SvError, wrapSystemError } from '../src/errors/index.js';

import { TMP_MARK } from '../src/util/durable.js';

export { atomicWrite, fsyncDir, TMP_MARK } from '../src/util/durable.js';

/** Names in a folder; a missing folder is empty. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw wrapSystemError(err, `list ${dir}`);
  }
}

/** Remove a file; a missing file is fine. Returns whether it existed. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw wrapSystemError(err, `remove ${path}`);
  }
}

/** Is `name` a leftover temp file of atomicWrite (or of a pack/segment writer)? */
export function isTempName(name: string): boolean {
  return name.includes(TMP_MARK);
}

/**
 * Read a whole store file, refusing anything but a regular file before reading a byte: opened with O_NONBLOCK
 * and O_NOFOLLOW (a FIFO planted in the store cannot block the open, a symlink is not followed), then fstat.
 * A FIFO, folder, device or link is SV_ERR_STORE_FOREIGN_FILE; a missing file is ENOENT (wrapped, with `cause`).
 */
export async function readStoreFile(path: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EISDIR' || code === 'ENXIO') throw foreignFile(path, code === 'ELOOP' ? 'a symbolic link' : code === 'EISDIR' ? 'a folder' : 'a socket or device');
    throw wrapSystemError(err, `read ${path}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw foreignFile(path, st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a folder' : 'not a regular file');
    return await fh.readFile();
  } catch (err) {
    throw wrapSystemError(err, `read ${path}`);
  } finally {
    await fh.close();
  }
}

export function foreignFile(path: string, what: string): SvError {
  return new SvError('SV_ERR_STORE_FOREIGN_FILE', `${path}: ${what}, expected a regular file written by the store; it is not read`, { path, found: what });
}

/** Is this error a missing file (directly or as the cause of a wrapped one)? */
export function isMissing(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  return e?.code === 'ENOENT' || e?.cause?.code === 'ENOENT';
}
