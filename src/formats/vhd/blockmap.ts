/**
 * The block map of a dynamic or differencing VHD: the BAT (one big-endian sector number per block,
 * 0xFFFFFFFF = not allocated) and each allocated block's sector bitmap (1 bit per 512-byte sector, most
 * significant bit first; 1 = the sector is stored in this block).
 *
 * Invariants checked at open: every allocated block (bitmap + the used part of its data) lies inside the
 * file before the end footer, outside the metadata (footer copy, dynamic header, BAT, locator data), and
 * does not overlap another block. Bitmaps are classified once (full / empty / partial) and the state kept in
 * one byte per block; only partial bitmaps are cached (bounded LRU), so memory is O(blocks), never O(size).
 */
import { SvError } from '../../errors/index.js';
import type { ImageFile } from '../file.js';
import { BAT_UNUSED, SECTOR } from './structs.js';

/** What a block's bitmap says (a plain object, not a const enum: safe under isolated-module transpilers). */
export const BlockState = { Unknown: 0, Unallocated: 1, Full: 2, Empty: 3, Partial: 4 } as const;
export type BlockState = (typeof BlockState)[keyof typeof BlockState];

/** A byte range of the file that blocks must not overlap. */
export interface Reserved {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
}

const PARTIAL_CACHE = 1024;

export class BlockMap {
  readonly blockSize: number;
  readonly bitmapBytes: number;
  readonly count: number;
  readonly virtualSize: number;
  readonly #file: ImageFile;
  readonly #bat: Uint32Array;
  readonly #state: Uint8Array;
  readonly #partial = new Map<number, Buffer>();
  readonly #full: Buffer;

  constructor(file: ImageFile, bat: Uint32Array, blockSize: number, bitmapBytes: number, virtualSize: number) {
    this.#file = file;
    this.#bat = bat;
    this.blockSize = blockSize;
    this.bitmapBytes = bitmapBytes;
    this.count = bat.length;
    this.virtualSize = virtualSize;
    this.#state = new Uint8Array(bat.length);
    for (let i = 0; i < bat.length; i++) if (bat[i] === BAT_UNUSED) this.#state[i] = BlockState.Unallocated;
    this.#full = Buffer.alloc(Math.ceil(blockSize / SECTOR / 8), 0xff);
  }

  /** Read and check the BAT: `count` entries at `tableOffset`; blocks inside [dataStart, dataEnd), no overlaps. */
  static async load(file: ImageFile, o: {
    tableOffset: number; count: number; blockSize: number; bitmapBytes: number; virtualSize: number; dataEnd: number; reserved: readonly Reserved[];
  }): Promise<BlockMap> {
    const raw = await file.readAt(o.tableOffset, o.count * 4, 'VHD block allocation table');
    const bat = new Uint32Array(o.count);
    const used: Array<{ index: number; start: number; end: number }> = [];
    for (let i = 0; i < o.count; i++) {
      const v = raw.readUInt32BE(i * 4);
      bat[i] = v;
      if (v === BAT_UNUSED) continue;
      const start = v * SECTOR;
      const dataLen = Math.min(o.blockSize, o.virtualSize - i * o.blockSize);
      const end = start + o.bitmapBytes + dataLen;
      const entryOffset = o.tableOffset + i * 4;
      if (end > o.dataEnd) {
        throw new SvError('SV_ERR_VHD_BAD_BAT', `${file.path}: VHD BAT entry ${i} (offset ${entryOffset}) points at sector ${v}: block [${start}, ${end}) ends past the data area (ends at ${o.dataEnd}, file size ${file.size})`, {
          path: file.path, structure: 'VHD block allocation table', offset: entryOffset, block: i, expected: `block end <= ${o.dataEnd}`, found: end,
        });
      }
      for (const r of o.reserved) {
        if (start < r.offset + r.length && r.offset < end) {
          throw new SvError('SV_ERR_VHD_BAD_BAT', `${file.path}: VHD BAT entry ${i} (offset ${entryOffset}) points at sector ${v}: block [${start}, ${end}) overlaps the ${r.name} [${r.offset}, ${r.offset + r.length})`, {
            path: file.path, structure: 'VHD block allocation table', offset: entryOffset, block: i, overlaps: r.name, found: start,
          });
        }
      }
      used.push({ index: i, start, end });
    }
    used.sort((a, b) => a.start - b.start);
    for (let k = 1; k < used.length; k++) {
      const a = used[k - 1]!;
      const b = used[k]!;
      if (b.start < a.end) {
        throw new SvError('SV_ERR_VHD_BAD_BAT', `${file.path}: VHD BAT entries ${a.index} and ${b.index} point at overlapping blocks [${a.start}, ${a.end}) and [${b.start}, ${b.end})`, {
          path: file.path, structure: 'VHD block allocation table', offset: o.tableOffset + b.index * 4, block: b.index, overlaps: `block ${a.index}`, found: b.start,
        });
      }
    }
    return new BlockMap(file, bat, o.blockSize, o.bitmapBytes, o.virtualSize);
  }

  get allocatedBlocks(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) if (this.#state[i] !== BlockState.Unallocated) n++;
    return n;
  }

  /** File offset of block `i`'s data (after its bitmap); the block must be allocated. */
  dataOffset(i: number): number {
    return this.#bat[i]! * SECTOR + this.bitmapBytes;
  }

  stateKnown(i: number): BlockState {
    return this.#state[i] as BlockState;
  }

  /** Classify block `i` (reads its bitmap once). */
  async state(i: number): Promise<BlockState> {
    const s = this.#state[i] as BlockState;
    if (s !== BlockState.Unknown && (s !== BlockState.Partial || this.#partial.has(i))) return s;
    const bits = Math.ceil(Math.min(this.blockSize, this.virtualSize - i * this.blockSize) / SECTOR);
    const used = Math.ceil(bits / 8);
    const bitmap = await this.#file.readAt(this.#bat[i]! * SECTOR, used, `VHD sector bitmap of block ${i}`);
    // Bits past the last sector of a short trailing block do not count.
    if (bits % 8 !== 0) bitmap[used - 1]! &= (0xff << (8 - (bits % 8))) & 0xff;
    let state: BlockState;
    if (bits % 8 === 0 && bitmap.equals(this.#full.subarray(0, used))) state = BlockState.Full;
    else if (bitmap.every((b) => b === 0)) state = BlockState.Empty;
    else if (bits % 8 !== 0 && isFullBits(bitmap, bits)) state = BlockState.Full;
    else state = BlockState.Partial;
    this.#state[i] = state;
    if (state === BlockState.Partial) {
      if (this.#partial.size >= PARTIAL_CACHE) this.#partial.delete(this.#partial.keys().next().value as number);
      this.#partial.set(i, bitmap);
    }
    return state;
  }

  /** Classify many blocks, a bounded number of bitmap reads at a time. */
  async prefetch(indexes: readonly number[]): Promise<void> {
    const todo = indexes.filter((i) => this.#state[i] === BlockState.Unknown);
    for (let k = 0; k < todo.length; k += 64) await Promise.all(todo.slice(k, k + 64).map((i) => this.state(i)));
  }

  /**
   * Runs of present / absent sectors of a partial block over the byte range [from, to) of the block:
   * calls `emit(start, end, present)` with byte offsets inside the block, in order, merged.
   */
  async runs(i: number, from: number, to: number, emit: (start: number, end: number, present: boolean) => void): Promise<void> {
    await this.state(i);
    let bitmap = this.#partial.get(i);
    if (!bitmap) {
      // Evicted between state() and here (concurrent readers): read it again.
      this.#state[i] = BlockState.Unknown;
      await this.state(i);
      bitmap = this.#partial.get(i) ?? Buffer.alloc(0);
    }
    let s = Math.floor(from / SECTOR);
    const lastSector = Math.ceil(to / SECTOR);
    while (s < lastSector) {
      const present = bitOf(bitmap, s);
      let e = s + 1;
      // Skip whole bytes of equal bits quickly, then bit by bit.
      while (e < lastSector) {
        if (e % 8 === 0 && e + 8 <= lastSector) {
          const byte = bitmap[e >> 3] ?? 0;
          if (byte === (present ? 0xff : 0)) { e += 8; continue; }
        }
        if (bitOf(bitmap, e) !== present) break;
        e++;
      }
      emit(Math.max(from, s * SECTOR), Math.min(to, e * SECTOR), present);
      s = e;
    }
  }
}

function bitOf(bitmap: Buffer, sector: number): boolean {
  return (((bitmap[sector >> 3] ?? 0) >> (7 - (sector & 7))) & 1) === 1;
}

function isFullBits(bitmap: Buffer, bits: number): boolean {
  for (let s = 0; s < bits; s++) if (!bitOf(bitmap, s)) return false;
  return true;
}
