/**
 * The Block Allocation Table (MS-VHDX 2.5). Payload and sector bitmap entries are interleaved: payload block i
 * is entry i + floor(i / chunkRatio); the sector bitmap entry of chunk c is entry c * (chunkRatio + 1) + chunkRatio.
 * Each entry is a u64: state in bits 0-2, FileOffsetMB in bits 20-63.
 *
 * `loadBat` reads exactly the entries the geometry needs (never more than the BAT region, which lies inside the
 * file, so memory is bounded by the file, not by a claimed size) and checks every entry once: known state for
 * the disk type, allocated blocks inside the (logical) file, 1 MiB aligned, not in the header section and not
 * overlapping the log, BAT or metadata regions or one another.
 */
import { SvError } from '../../errors/index.js';
import { badInput } from '../../errors/bad-input.js';
import type { FileView } from './file-view.js';
import {
  BAT_ENTRY_SIZE, HEADER_SECTION_SIZE, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED, PAYLOAD_BLOCK_UNMAPPED, PAYLOAD_BLOCK_ZERO, SB_BLOCK_NOT_PRESENT, SB_BLOCK_PRESENT, SECTOR_BITMAP_BLOCK_SIZE,
  chunkRatioOf,
} from './layout.js';

export interface BatGeometry {
  readonly blockSize: number;
  readonly virtualSize: number;
  readonly logicalSectorSize: number;
  readonly hasParent: boolean;
}

/** A named byte range of the file that blocks must not overlap. */
export interface Reserved {
  readonly name: string;
  readonly start: number;
  readonly length: number;
}

export class Bat {
  readonly #raw: Buffer;
  readonly chunkRatio: number;
  readonly dataBlocks: number;
  readonly bitmapBlocks: number;
  readonly totalEntries: number;

  constructor(raw: Buffer, geometry: BatGeometry) {
    this.#raw = raw;
    this.chunkRatio = chunkRatioOf(geometry.logicalSectorSize, geometry.blockSize);
    this.dataBlocks = Math.ceil(geometry.virtualSize / geometry.blockSize);
    this.bitmapBlocks = Math.ceil(this.dataBlocks / this.chunkRatio);
    this.totalEntries = batEntryCount(geometry);
  }

  #state(entry: number): number {
    return this.#raw[entry * BAT_ENTRY_SIZE]! & 7;
  }

  #offset(entry: number): number {
    const at = entry * BAT_ENTRY_SIZE;
    return ((this.#raw.readUInt32LE(at) >>> 20) + this.#raw.readUInt32LE(at + 4) * 4096) * MiB;
  }

  payloadEntry(block: number): number {
    return block + Math.floor(block / this.chunkRatio);
  }

  bitmapEntry(chunk: number): number {
    return chunk * (this.chunkRatio + 1) + this.chunkRatio;
  }

  payloadState(block: number): number {
    return this.#state(this.payloadEntry(block));
  }

  /** File offset of payload block `block` (meaningful for FULLY/PARTIALLY_PRESENT). */
  payloadOffset(block: number): number {
    return this.#offset(this.payloadEntry(block));
  }

  bitmapState(chunk: number): number {
    const e = this.bitmapEntry(chunk);
    return e < this.totalEntries ? this.#state(e) : SB_BLOCK_NOT_PRESENT;
  }

  bitmapOffset(chunk: number): number {
    return this.#offset(this.bitmapEntry(chunk));
  }

  /** Count of payload blocks per state name. */
  stateCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < this.dataBlocks; i++) {
      const s = this.payloadState(i);
      counts[s] = (counts[s] ?? 0) + 1;
    }
    return counts;
  }
}

export function batEntryCount(g: BatGeometry): number {
  const chunkRatio = chunkRatioOf(g.logicalSectorSize, g.blockSize);
  const dataBlocks = Math.ceil(g.virtualSize / g.blockSize);
  const bitmapBlocks = Math.ceil(dataBlocks / chunkRatio);
  return g.hasParent ? bitmapBlocks * (chunkRatio + 1) : dataBlocks + Math.floor((dataBlocks - 1) / chunkRatio);
}

const PAYLOAD_VALID = new Set([
  PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_UNDEFINED, PAYLOAD_BLOCK_ZERO, PAYLOAD_BLOCK_UNMAPPED, PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
]);

export async function loadBat(view: FileView, regionOffset: number, regionLength: number, g: BatGeometry, reserved: readonly Reserved[]): Promise<Bat> {
  const path = view.path;
  const count = batEntryCount(g);
  if (count * BAT_ENTRY_SIZE > regionLength) {
    throw badInput('SV_ERR_VHDX_BAT', path, 'BAT region length', regionOffset, `>= ${count * BAT_ENTRY_SIZE} bytes (${count} entries)`, regionLength);
  }
  const raw = await view.read(regionOffset, count * BAT_ENTRY_SIZE, 'BAT');
  const bat = new Bat(raw, g);
  // Allocated ranges in MiB units, encoded start * 512 + lengthMiB (lengths are at most 256 MiB) so that one
  // numeric sort finds overlaps.
  const keys: number[] = [];
  const names = new Map<number, string[]>();
  const add = (start: number, length: number, name: string): void => {
    const key = (start / MiB) * 512 + Math.ceil(length / MiB);
    keys.push(key);
    const list = names.get(key);
    if (list) list.push(name);
    else names.set(key, [name]);
  };
  for (const r of reserved) {
    for (let s = r.start; s < r.start + r.length; s += 256 * MiB) add(s, Math.min(256 * MiB, r.start + r.length - s), r.name);
  }
  const entryAt = (e: number): number => regionOffset + e * BAT_ENTRY_SIZE;
  for (let i = 0; i < bat.dataBlocks; i++) {
    const state = bat.payloadState(i);
    const e = bat.payloadEntry(i);
    if (!PAYLOAD_VALID.has(state) || (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent)) {
      throw badInput('SV_ERR_VHDX_BAT', path, `BAT entry ${e} (payload block ${i}) state`, entryAt(e),
        g.hasParent ? '0, 1, 2, 3, 6 or 7' : '0, 1, 2, 3 or 6 (7 only in a differencing disk)', state);
    }
    if (state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      const off = bat.payloadOffset(i);
      const need = Math.min(g.blockSize, g.virtualSize - i * g.blockSize);
      checkPlacement(view, `payload block ${i} (BAT entry ${e})`, entryAt(e), off, need);
      add(off, need, `payload block ${i}`);
      if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && bat.bitmapState(Math.floor(i / bat.chunkRatio)) !== SB_BLOCK_PRESENT) {
        throw badInput('SV_ERR_VHDX_BAT', path, `BAT entry ${e} (payload block ${i}, PARTIALLY_PRESENT) sector bitmap`, entryAt(bat.bitmapEntry(Math.floor(i / bat.chunkRatio))),
          'a present sector bitmap block for its chunk', 'none');
      }
    }
  }
  for (let c = 0; c < bat.bitmapBlocks; c++) {
    const e = bat.bitmapEntry(c);
    if (e >= count) break;
    const state = bat.bitmapState(c);
    if (state !== SB_BLOCK_NOT_PRESENT && state !== SB_BLOCK_PRESENT) {
      throw badInput('SV_ERR_VHDX_BAT', path, `BAT entry ${e} (sector bitmap block ${c}) state`, entryAt(e), '0 or 6', state);
    }
    if (state === SB_BLOCK_PRESENT && g.hasParent) {
      const off = bat.bitmapOffset(c);
      checkPlacement(view, `sector bitmap block ${c} (BAT entry ${e})`, entryAt(e), off, SECTOR_BITMAP_BLOCK_SIZE);
      add(off, SECTOR_BITMAP_BLOCK_SIZE, `sector bitmap block ${c}`);
    }
  }
  const sorted = Float64Array.from(keys).sort();
  for (let k = 1; k < sorted.length; k++) {
    const prev = sorted[k - 1]!;
    const cur = sorted[k]!;
    const prevStart = Math.floor(prev / 512);
    const prevEnd = prevStart + (prev % 512);
    const curStart = Math.floor(cur / 512);
    if (curStart < prevEnd) {
      const same = prev === cur;
      const a = same ? names.get(cur)![1]! : names.get(cur)![0]!;
      const b = names.get(prev)![0]!;
      throw new SvError('SV_ERR_VHDX_BAT',
        `${path}: ${a} at offset ${curStart * MiB}: expected no overlap, found it overlaps ${b} (${prevStart * MiB}..${prevEnd * MiB})`,
        { path, structure: 'BAT', offset: curStart * MiB, expected: 'disjoint blocks and regions', found: `overlaps ${b}` });
    }
  }
  return bat;
}

function checkPlacement(view: FileView, what: string, entryOffset: number, off: number, need: number): void {
  if (off < HEADER_SECTION_SIZE) {
    throw badInput('SV_ERR_VHDX_BAT', view.path, `BAT entry of ${what} FileOffsetMB`, entryOffset, 'a block at or after 1 MiB (outside the header section)', `offset ${off}`);
  }
  if (off + need > view.size) {
    throw badInput('SV_ERR_VHDX_BAT', view.path, `BAT entry of ${what} FileOffsetMB`, entryOffset,
      `a block inside the file (size ${view.size})`, `offset ${off} + ${need} bytes, past the end of the file`);
  }
}
