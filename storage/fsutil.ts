/**
 * Durable file primitives used by every store module. The one rule: a file the store names is only ever
 * created by writing a temp file in the same folder, fsyncing it, renaming it into place and fsyncing the
 * folder. Readers therefore see either nothing or a complete file; a crash leaves at worst `*.tmp-*` files,
 * which gc removes.
 */
import { readdir, unlink } from 'node:fs/promises';
import { wrapSystemError } from '../src/errors/index.js';

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
