/**
 * Durable file primitives shared by the store, the appliance state and the disk writers. The rule they
 * implement: a named file is only ever created by writing a temp file in the same folder, fsyncing it,
 * renaming it into place and fsyncing the folder, so a reader sees nothing or a complete file and a crash
 * leaves at worst `*.tmp-*` files.
 */
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { wrapSystemError } from '../errors/index.js';

/** Marks temp files: `<name>.tmp-<pid>-<random>`. */
export const TMP_MARK = '.tmp-';

/** fsync a folder so renames and unlinks in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
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
export async function atomicWrite(path: string, data: Buffer | string, mode = 0o666): Promise<void> {
  const tmp = join(dirname(path), `${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const fh = await open(tmp, 'wx', mode);
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

/** Write every buffer at `position` onwards with writev (1,024 at a time), resuming after short writes. */
export async function writeAllv(fh: FileHandle, bufs: readonly Buffer[], position: number): Promise<void> {
  let list = bufs;
  let at = position;
  while (list.length) {
    const batch = list.slice(0, 1024);
    const want = batch.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(batch, at);
    at += bytesWritten;
    if (bytesWritten < want) {
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const b of list) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        rest.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
      list = rest;
    } else list = list.slice(batch.length);
  }
}
