/**
 * The scratch files of running views (create-view.ts): per disk an empty qcow2 of the disk's virtual size,
 * the copy-before-write target. An empty qcow2 of a given size is the same bytes whatever its name (about
 * 200 KiB), so `qemu-img create` runs once per size and process, into a temporary file that is read and
 * removed; every later view writes those bytes: no process per view and disk (10-30 ms each, and their CPU,
 * on this machine; four views at once on one host ran four). Nothing is kept on disk but the scratch files.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Per virtual size: the bytes of an empty qcow2 (made once; a failure is not kept). */
const images = new Map<number, Promise<Buffer>>();

async function emptyImage(qemuImg: string, path: string, size: number): Promise<Buffer> {
  const tmp = `${path}.empty-${randomBytes(4).toString('hex')}`;
  try {
    await run(qemuImg, ['create', '-q', '-f', 'qcow2', tmp, String(size)]);
    return await readFile(tmp);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Create `path` (it must not exist): an empty qcow2 of `size` bytes. */
export async function makeScratch(qemuImg: string, path: string, size: number): Promise<void> {
  let image = images.get(size);
  if (!image) {
    image = emptyImage(qemuImg, path, size);
    images.set(size, image);
    image.catch(() => images.delete(size));
  }
  await writeFile(path, await image, { flag: 'wx' });
}
