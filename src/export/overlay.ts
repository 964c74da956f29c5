/**
 * A writable view of a read-only base (a recovery point): every write goes to a scratch overlay, the base
 * never changes. Used by writable exports (instant recovery) and, with `--keep`, backed up as a new point.
 *
 * Layout: one sparse scratch file as large as the disk, holding the blocks written so far at their own
 * offsets, and two bitmaps in memory (one bit per `blockSize` block):
 *   written  the block's current content is in the scratch file (or is zero, below);
 *   zero     the block was zeroed or trimmed: it reads as zero without a read.
 * Invariants: a block with `written` set holds its whole current content in the file (a partial write to a
 * block not yet written first copies the block from the base: copy-on-write at block granularity), so
 * the file alone is the overlaid view of every written block; a `zero` block's file range reads as zero
 * (never written: a hole; written before: zeros are written over it). A block's bits are set only after
 * its data is in the file, so a read that races a write sees the old or the new content, never a mix of
 * a block.
 * Writes, zeroes and trims run one at a time (a queue: copy-on-write of a block must not race another
 * write to it); reads run concurrently. Memory: 2 bits per block (a 2 TiB disk at 64 KiB: 8 MiB).
 * The scratch file lives as long as the overlay: `close()` deletes it, `detach()` hands it over.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { SvError } from '../errors/index.js';
import type { BackendExtent, NbdBackend } from '../nbd/backend.js';

class Bits {
  readonly bytes: Uint8Array;
  constructor(count: number) {
    this.bytes = new Uint8Array(Math.ceil(count / 8));
  }
  get(i: number): boolean {
    return (this.bytes[i >>> 3]! & (1 << (i & 7))) !== 0;
  }
  set(i: number, on: boolean): void {
    if (on) this.bytes[i >>> 3]! |= 1 << (i & 7);
    else this.bytes[i >>> 3]! &= ~(1 << (i & 7));
  }
}

/** Zeros written over formerly written blocks, in pieces of this size. */
const ZERO_PIECE = 1 << 20;

export interface OverlayOptions {
  /** Path of the scratch file to create (must not exist). */
  readonly scratchPath: string;
  /** Copy-on-write unit: a power of two (the store's block size, so a kept overlay maps onto its blocks). */
  readonly blockSize: number;
}

export class Overlay implements NbdBackend {
  readonly writable = true;
  readonly size: number;
  readonly blockSize: number;
  readonly scratchPath: string;
  #base: NbdBackend;
  #file: FileHandle;
  #written: Bits;
  #zero: Bits;
  #queue: Promise<unknown> = Promise.resolve();
  #dirty = false;
  #blocksWritten = 0;

  private constructor(base: NbdBackend, file: FileHandle, opts: OverlayOptions) {
    this.#base = base;
    this.#file = file;
    this.size = base.size;
    this.blockSize = opts.blockSize;
    this.scratchPath = opts.scratchPath;
    const count = Math.ceil(base.size / opts.blockSize);
    this.#written = new Bits(count);
    this.#zero = new Bits(count);
  }

  static async create(base: NbdBackend, opts: OverlayOptions): Promise<Overlay> {
    const bs = opts.blockSize;
    if (!Number.isSafeInteger(bs) || bs < 512 || (bs & (bs - 1)) !== 0) {
      throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `overlay block size ${bs}: must be a power of two of at least 512`, { blockSize: bs });
    }
    let file: FileHandle;
    try {
      file = await open(opts.scratchPath, 'wx+', 0o600);
      await file.truncate(base.size);
    } catch (err) {
      throw new SvError('SV_ERR_CORE_IO', `cannot create the overlay scratch file ${opts.scratchPath}: ${(err as Error).message}`, { path: opts.scratchPath }, { cause: err });
    }
    return new Overlay(base, file, opts);
  }

  /** Blocks written (or zeroed) so far. */
  get blocksWritten(): number {
    return this.#blocksWritten;
  }

  /** Byte ranges [offset, length] of the written blocks, merged, in order (the change list of a kept overlay). */
  writtenRanges(): [number, number][] {
    const out: [number, number][] = [];
    const bs = this.blockSize;
    const count = Math.ceil(this.size / bs);
    for (let i = 0; i < count; ) {
      if (this.#written.bytes[i >>> 3] === 0 && (i & 7) === 0) {
        i += 8;
        continue;
      }
      if (!this.#written.get(i)) {
        i++;
        continue;
      }
      let j = i;
      while (j < count && this.#written.get(j)) j++;
      out.push([i * bs, Math.min(this.size, j * bs) - i * bs]);
      i = j;
    }
    return out;
  }

  // --- reads ------------------------------------------------------------------------------------------

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    const parts: Promise<unknown>[] = [];
    for (const run of this.#runs(offset, length)) {
      const at = run.offset - offset;
      if (run.state === 'zero') continue; // already zero
      if (run.state === 'file') parts.push(this.#file.read(out, at, run.length, run.offset));
      else parts.push(this.#base.read(run.offset, run.length).then((b) => b.copy(out, at)));
    }
    await Promise.all(parts);
    return out;
  }

  async status(offset: number, length: number, maxExtents: number): Promise<BackendExtent[]> {
    const out: BackendExtent[] = [];
    const push = (e: BackendExtent): void => {
      const last = out[out.length - 1];
      if (last && last.hole === e.hole && last.zero === e.zero) out[out.length - 1] = { ...e, length: last.length + e.length };
      else out.push(e);
    };
    for (const run of this.#runs(offset, length)) {
      if (out.length >= maxExtents) break;
      if (run.state === 'zero') push({ length: run.length, hole: true, zero: true });
      else if (run.state === 'file') push({ length: run.length, hole: false, zero: false });
      else {
        let at = run.offset;
        while (at < run.offset + run.length && out.length <= maxExtents) {
          const got = await this.#base.status(at, run.offset + run.length - at, maxExtents);
          if (got.length === 0) break;
          for (const e of got) push(e);
          at += got.reduce((n, e) => n + e.length, 0);
        }
      }
    }
    // Merging may have left more than asked: cut to maxExtents (covering less is allowed).
    return out.slice(0, maxExtents);
  }

  /** Consecutive pieces of [offset, offset + length) by where their bytes are. */
  *#runs(offset: number, length: number): Generator<{ offset: number; length: number; state: 'base' | 'file' | 'zero' }> {
    const bs = this.blockSize;
    const end = offset + length;
    let at = offset;
    while (at < end) {
      const block = Math.floor(at / bs);
      const state = this.#stateOf(block);
      let next = (block + 1) * bs;
      while (next < end && this.#stateOf(next / bs) === state) next += bs;
      const stop = Math.min(end, next);
      yield { offset: at, length: stop - at, state };
      at = stop;
    }
  }

  #stateOf(block: number): 'base' | 'file' | 'zero' {
    if (!this.#written.get(block)) return 'base';
    return this.#zero.get(block) ? 'zero' : 'file';
  }

  // --- writes -----------------------------------------------------------------------------------------

  write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    return this.#serial(async () => {
      await this.#put(offset, data);
      await this.#settle(fua);
    });
  }

  writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    return this.#serial(async () => {
      await this.#zeroRange(offset, length, true);
      await this.#settle(fua);
    });
  }

  /** Whole blocks inside the range read as zero afterwards; partial blocks are left as they are. */
  trim(offset: number, length: number): Promise<void> {
    return this.#serial(() => this.#zeroRange(offset, length, false));
  }

  flush(): Promise<void> {
    return this.#serial(() => this.#settle(true));
  }

  /** Stop using the scratch file and delete it. */
  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
    await this.#file.close().catch(() => undefined);
    await rm(this.scratchPath, { force: true });
  }

  /** Stop using the scratch file and keep it (the caller now owns `scratchPath`). */
  async detach(): Promise<void> {
    await this.#queue.catch(() => undefined);
    await this.#file.sync();
    await this.#file.close();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #settle(durable: boolean): Promise<void> {
    if (durable && this.#dirty) {
      await this.#file.datasync();
      this.#dirty = false;
    }
  }

  #mark(block: number, zero: boolean): void {
    if (!this.#written.get(block)) this.#blocksWritten++;
    this.#written.set(block, true);
    this.#zero.set(block, zero);
  }

  async #put(offset: number, data: Buffer): Promise<void> {
    const bs = this.blockSize;
    const end = offset + data.length;
    let at = offset;
    while (at < end) {
      const block = Math.floor(at / bs);
      const start = block * bs;
      const blockEnd = Math.min(start + bs, this.size);
      if (at === start && end >= blockEnd) {
        // A run of whole blocks: one write.
        let stop = blockEnd;
        while (stop + bs <= end) stop += bs;
        if (stop < end && end >= this.size) stop = this.size;
        await this.#pwrite(data.subarray(at - offset, stop - offset), at);
        for (let b = block; b * bs < stop; b++) this.#mark(b, false);
        at = stop;
        continue;
      }
      const stop = Math.min(end, blockEnd);
      const piece = data.subarray(at - offset, stop - offset);
      if (this.#written.get(block)) {
        await this.#pwrite(piece, at); // the file holds the whole block already (zeros for a zero block)
      } else {
        const whole = await this.#base.read(start, blockEnd - start);
        piece.copy(whole, at - start);
        await this.#pwrite(whole, start);
      }
      this.#mark(block, false);
      at = stop;
    }
  }

  async #zeroRange(offset: number, length: number, partialToo: boolean): Promise<void> {
    const bs = this.blockSize;
    const end = offset + length;
    const first = Math.ceil(offset / bs);
    const lastEnd = end >= this.size ? Math.ceil(this.size / bs) : Math.floor(end / bs);
    if (partialToo) {
      const headEnd = Math.min(end, first * bs);
      if (headEnd > offset) await this.#put(offset, Buffer.alloc(headEnd - offset));
      const tailStart = Math.max(offset, lastEnd * bs);
      if (lastEnd >= first && end > tailStart && tailStart < this.size) await this.#put(tailStart, Buffer.alloc(end - tailStart));
    }
    for (let b = first; b < lastEnd; b++) {
      if (this.#written.get(b) && !this.#zero.get(b)) {
        // Real data in the file: overwrite it with zeros (a never-written block is a hole already).
        const start = b * bs;
        const stop = Math.min(start + bs, this.size);
        for (let at = start; at < stop; at += ZERO_PIECE) await this.#pwrite(Buffer.alloc(Math.min(ZERO_PIECE, stop - at)), at);
      }
      this.#mark(b, true);
    }
  }

  async #pwrite(data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#file.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
    this.#dirty = true;
  }
}
