/**
 * Raw sparse writer: the output is the virtual disk byte for byte, with holes where it is zero. The file is
 * ftruncated to the virtual size first, then only non-zero blocks are written (blocks the source gives as null,
 * or whose bytes are all zero, stay holes). Written to a temp path by writeDisk, which renames it.
 */
import { open } from 'node:fs/promises';
import { wrapSystemError } from '../../errors/index.js';
import { isZero } from '../common.js';
import { checkedBlocks } from '../source.js';
import type { BlockSource } from '../types.js';

export async function writeRaw(source: BlockSource, path: string): Promise<void> {
  const fh = await open(path, 'wx').catch((err: unknown) => { throw wrapSystemError(err, `create ${path}`); });
  try {
    await fh.truncate(source.virtualSize);
    for await (const { index, data } of checkedBlocks(source, path)) {
      if (data === null || isZero(data)) continue;
      await writeFully(fh, data, index * source.blockSize, path);
    }
  } catch (err) {
    throw wrapSystemError(err, `write ${path}`);
  } finally {
    await fh.close();
  }
}

async function writeFully(fh: import('node:fs/promises').FileHandle, data: Buffer, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done).catch((err: unknown) => {
      throw wrapSystemError(err, `write ${path} at ${position + done}`);
    });
    done += bytesWritten;
  }
}
