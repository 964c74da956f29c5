/**
 * Durable file primitives used by every store module. The one rule: a file the store names is only ever
 * created by writing a temp file in the same folder, fsyncing it, renaming it into place and fsyncing the
 * folder. Readers therefore see either nothing or a complete file; a crash leaves at worst `*.tmp-*` files,
 * which gc removes.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { wrapSystemError } from '../src/errors/index.js';

export const TMP_MARK = '.tmp-';

/** fsync a folder so renames and unlinks in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    throw wrapSystemError(err, `fsync folder ${dir}`);
  } finally {
    await fh?.close();
  }
}

/** Write `data` to `path` atomically and durably (temp + fsync + rename + folder fsync). */
export async function atomicWrite(path: string, data: Buffer | string): Promise<void> {
  const tmp = join(dirname(path), `${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw wrapSystemError(err, `write ${path}`);
  }
  await fsyncDir(dirname(path));
}

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
