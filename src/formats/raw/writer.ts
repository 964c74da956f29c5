/**
 * Raw sparse writer: the output is the virtual disk byte for byte, with holes where it is zero. The file is
 * ftruncated to the virtual size first, then only non-zero blocks are written (blocks the source gives as null,
 * or whose bytes are all zero, stay holes). Written to a temp path by writeDisk, which renames it.
 *
 * Adjacent non-zero blocks are gathered into one writev of up to BATCH_BYTES, and up to MAX_INFLIGHT such
 * writes run at once (their ranges never overlap), so the kernel's copies into the page cache spread over the
 * libuv threads while the source produces the next blocks. The source's buffers are kept until written (the
 * BlockSource contract: each yielded buffer is fresh).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { wrapSystemError } from '../../errors/index.js';
import { isZero } from '../common.js';
import { checkedBlocks } from '../source.js';
import type { BlockSource } from '../types.js';

const BATCH_BYTES = 8 * 1024 * 1024;
const MAX_INFLIGHT = 4;

export async function writeRaw(source: BlockSource, path: string): Promise<void> {
  const fh = await open(path, 'wx').catch((err: unknown) => { throw wrapSystemError(err, `create ${path}`); });
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  let batch: Buffer[] = [];
  let batchStart = 0;
  let batchBytes = 0;
  const flush = async (): Promise<void> => {
    if (!batch.length) return;
    const bufs = batch;
    const position = batchStart;
    batch = [];
    batchBytes = 0;
    while (inflight.size >= MAX_INFLIGHT) await Promise.race(inflight);
    if (failure) throw failure;
    const w: Promise<void> = writeAllAt(fh, bufs, position, path)
      .catch((err: unknown) => { failure ??= err; })
      .finally(() => inflight.delete(w));
    inflight.add(w);
  };
  try {
    await fh.truncate(source.virtualSize);
    for await (const { index, data } of checkedBlocks(source, path)) {
      if (failure) throw failure;
      if (data === null || isZero(data)) {
        await flush();
        continue;
      }
      const position = index * source.blockSize;
      if (batch.length && batchStart + batchBytes !== position) await flush();
      if (!batch.length) batchStart = position;
      batch.push(data);
      batchBytes += data.length;
      if (batchBytes >= BATCH_BYTES) await flush();
    }
    await flush();
    await Promise.all(inflight);
    if (failure) throw failure;
  } catch (err) {
    throw wrapSystemError(err, `write ${path}`);
  } finally {
    await Promise.allSettled(inflight);
    await fh.close();
  }
}

/** writev all of `bufs` at `position`, continuing after partial writes. */
async function writeAllAt(fh: FileHandle, bufs: Buffer[], position: number, path: string): Promise<void> {
  let list = bufs;
  let at = position;
  while (list.length) {
    const batch = list.slice(0, 1024);
    const want = batch.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(batch, at).catch((err: unknown) => {
      throw wrapSystemError(err, `write ${path} at ${at}`);
    });
    at += bytesWritten;
    if (bytesWritten < want) {
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const b of list) {
        if (skip >= b.length) { skip -= b.length; continue; }
        rest.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
      list = rest;
    } else list = list.slice(batch.length);
  }
}
