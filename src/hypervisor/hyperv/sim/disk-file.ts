/**
 * SIMULATION (SimulatedHyperVHost): the simulated VM's write path into a VHDX file, in place.
 *
 * The simulation's disks are VHDX files written by the project's VHDX writer (src/formats/vhdx/writer.ts):
 * a dynamic base, and differencing `.avhdx` children created at each checkpoint. Those files have an empty
 * log (LogGuid zero), so the BAT read by src/formats/vhdx/layer.ts is the BAT on disk. A write here:
 *   - to a FULLY_PRESENT block: written at the block's file offset;
 *   - to a block not present in this file (NOT_PRESENT / ZERO / UNMAPPED): the block's current content is read
 *     through the whole chain (the parent's bytes, or zeros), the write laid over it, the whole block appended
 *     at the 1 MiB-aligned end of the file, then its BAT entry set FULLY_PRESENT (data first, BAT entry
 *     second: a kill between the two leaves an unused block at the end, never a BAT entry to missing data);
 *   - to a PARTIALLY_PRESENT block: refused (the simulation never makes one).
 * Hyper-V itself keeps such updates crash-safe through the VHDX log; the simulation does not write a log
 * (a kill -9 of the writing process keeps every completed pwrite in the page cache, which is what the tests do).
 * One writer per file at a time (the simulated guest, or the simulated merge while the guest is paused).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { SvError } from '../../../errors/index.js';
import { openDisk } from '../../../formats/open.js';
import { ImageFile } from '../../../formats/file.js';
import type { DiskImage } from '../../../formats/types.js';
import { writeBatEntry } from '../../../formats/vhdx/build.js';
import { openVhdxLayer } from '../../../formats/vhdx/layer.js';
import { GUIDS, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT } from '../../../formats/vhdx/layout.js';

interface Geometry {
  readonly blockSize: number;
  readonly virtualSize: number;
  readonly chunkRatio: number;
  readonly batOffset: number;
}

export class SimVhdxFile {
  readonly path: string;
  readonly virtualSize: number;
  readonly #fh: FileHandle;
  readonly #g: Geometry;
  /** Block → file offset of the FULLY_PRESENT blocks of this file. */
  readonly #present = new Map<number, number>();
  readonly #partial = new Set<number>();
  #chain: DiskImage | undefined;
  #eof: number;

  private constructor(path: string, fh: FileHandle, g: Geometry, eof: number) {
    this.path = path;
    this.#fh = fh;
    this.#g = g;
    this.virtualSize = g.virtualSize;
    this.#eof = eof;
  }

  static async open(path: string): Promise<SimVhdxFile> {
    const file = await ImageFile.open(path);
    let g: Geometry;
    const present = new Map<number, number>();
    const partial = new Set<number>();
    try {
      const layer = await openVhdxLayer(file);
      if (layer.replay) throw new SvError('SV_ERR_HYPERV_HOST', `${path}: the simulation writes only VHDX files with an empty log (written by this project)`, { path });
      const bat = layer.regions.find((r) => r.guid === GUIDS.batRegion)!;
      g = { blockSize: layer.params.blockSize, virtualSize: layer.params.virtualSize, chunkRatio: layer.bat.chunkRatio, batOffset: bat.fileOffset };
      for (let b = 0; b < layer.bat.dataBlocks; b++) {
        const s = layer.bat.payloadState(b);
        if (s === PAYLOAD_BLOCK_FULLY_PRESENT) present.set(b, layer.bat.payloadOffset(b));
        else if (s === PAYLOAD_BLOCK_PARTIALLY_PRESENT) partial.add(b);
      }
    } finally {
      await file.close();
    }
    const fh = await open(path, 'r+');
    const size = (await fh.stat()).size;
    const f = new SimVhdxFile(path, fh, g, Math.ceil(size / MiB) * MiB);
    for (const [b, o] of present) f.#present.set(b, o);
    for (const b of partial) f.#partial.add(b);
    return f;
  }

  /** Write `data` at virtual `offset` (sector-aligned by the callers; any range inside the disk works). */
  async write(offset: number, data: Buffer): Promise<void> {
    if (offset < 0 || offset + data.length > this.virtualSize) {
      throw new SvError('SV_ERR_FORMAT_READ_RANGE', `${this.path}: write [${offset}, ${offset + data.length}) outside the ${this.virtualSize}-byte disk`, { path: this.path, offset });
    }
    const bs = this.#g.blockSize;
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inner = at - block * bs;
      const n = Math.min(bs - inner, data.length - done);
      const piece = data.subarray(done, done + n);
      const fileOffset = this.#present.get(block);
      if (fileOffset !== undefined) await this.#fh.write(piece, 0, n, fileOffset + inner);
      else await this.#allocate(block, inner, piece);
      done += n;
    }
  }

  async #allocate(block: number, inner: number, piece: Buffer): Promise<void> {
    if (this.#partial.has(block)) throw new SvError('SV_ERR_HYPERV_HOST', `${this.path}: block ${block} is partially present (the simulation never writes such files)`, { path: this.path, block });
    const bs = this.#g.blockSize;
    const start = block * bs;
    const len = Math.min(bs, this.virtualSize - start);
    this.#chain ??= await openDisk(this.path);
    const content = Buffer.alloc(bs);
    await this.#chain.read(start, len, content);
    piece.copy(content, inner);
    const at = this.#eof;
    await this.#fh.write(content, 0, bs, at);
    this.#eof = at + Math.ceil(bs / MiB) * MiB;
    const entry = Buffer.alloc(8);
    writeBatEntry(entry, 0, PAYLOAD_BLOCK_FULLY_PRESENT, at);
    await this.#fh.write(entry, 0, 8, this.#g.batOffset + 8 * (block + Math.floor(block / this.#g.chunkRatio)));
    this.#present.set(block, at);
  }

  /** The blocks this file holds (FULLY_PRESENT), as virtual byte ranges: what a merge copies into the parent. */
  presentRanges(): Array<[offset: number, length: number]> {
    const bs = this.#g.blockSize;
    return [...this.#present.keys()].sort((a, b) => a - b).map((b) => [b * bs, Math.min(bs, this.virtualSize - b * bs)]);
  }

  /** Read through this file's blocks and, where it holds none, its parent chain (block by block: the chain's BAT is the one at open). */
  async read(offset: number, length: number): Promise<Buffer> {
    const bs = this.#g.blockSize;
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const n = Math.min(bs - (at - block * bs), length - done);
      const fo = this.#present.get(block);
      if (fo !== undefined) await this.#fh.read(out, done, n, fo + at - block * bs);
      else {
        this.#chain ??= await openDisk(this.path);
        await this.#chain.read(at, n, out.subarray(done, done + n));
      }
      done += n;
    }
    return out;
  }

  async sync(): Promise<void> {
    await this.#fh.sync();
  }

  async close(): Promise<void> {
    await this.#chain?.close();
    this.#chain = undefined;
    await this.#fh.close();
  }
}
