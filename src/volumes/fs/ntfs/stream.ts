/**
 * Reading an attribute's bytes: resident values, non-resident runs (sparse runs and bytes past the
 * initialized size read as zeros), and LZNT1-compressed attributes (one compression unit of 2^n clusters at a
 * time: a unit with no clusters is zeros, a fully allocated unit is stored as is, a partly allocated one is
 * compressed). Only the clusters covering the requested range are read from the volume.
 */
import { badInput } from '../../../errors/bad-input.js';
import type { FileHandle, VolumeReader } from '../types.js';
import { lznt1Decompress } from './lznt1.js';
import { findRun, type Run } from './runlist.js';

export interface StreamContext {
  readonly vol: VolumeReader;
  readonly name: string;
  readonly clusterSize: number;
  /** "MFT record 42 $DATA", for messages. */
  readonly structure: string;
}

export function residentHandle(value: Buffer): FileHandle {
  return {
    size: value.length,
    async read(offset: number, length: number): Promise<Buffer> {
      const start = Math.min(Math.max(0, offset), value.length);
      return Buffer.from(value.subarray(start, Math.min(value.length, start + Math.max(0, length))));
    },
  };
}

/** [start, end) of a read clamped to the stream. */
function clamp(size: number, offset: number, length: number): [number, number] {
  const start = Math.min(Math.max(0, offset), size);
  return [start, Math.min(size, start + Math.max(0, length))];
}

function unmapped(ctx: StreamContext, vcn: number) {
  return badInput('SV_ERR_FS_NTFS_BAD_RUNLIST', ctx.name, `${ctx.structure} runlist`, vcn * ctx.clusterSize, `a run mapping VCN ${vcn}`, 'none');
}

/** Copy bytes [start, end) of the run-mapped stream into `out` at `outAt`; sparse and unmapped-tail runs stay zero. */
async function readRuns(ctx: StreamContext, runs: readonly Run[], start: number, end: number, out: Buffer, outAt: number): Promise<void> {
  const cs = ctx.clusterSize;
  let pos = start;
  while (pos < end) {
    const vcn = Math.floor(pos / cs);
    const i = findRun(runs, vcn);
    if (i < 0) throw unmapped(ctx, vcn);
    const run = runs[i]!;
    const runEnd = Math.min(end, (run.vcn + run.length) * cs);
    if (run.lcn !== null) {
      const data = await ctx.vol.read(run.lcn * cs + (pos - run.vcn * cs), runEnd - pos);
      data.copy(out, outAt + pos - start);
    }
    pos = runEnd;
  }
}

export class RunHandle implements FileHandle {
  readonly size: number;
  readonly #ctx: StreamContext;
  readonly #runs: readonly Run[];
  readonly #initialized: number;

  constructor(ctx: StreamContext, runs: readonly Run[], size: number, initialized: number) {
    this.#ctx = ctx;
    this.#runs = runs;
    this.size = size;
    this.#initialized = Math.min(initialized, size);
  }

  /**
   * A read inside one allocated run (the common case for file contents: NTFS allocates in long runs) returns
   * the volume's buffer as is, without a copy (for large reads of a point image, a view of what the worker
   * decoded). The result is the caller's but must be treated as read-only: it may be shared with the volume.
   */
  async read(offset: number, length: number): Promise<Buffer> {
    const [start, end] = clamp(this.size, offset, length);
    const realEnd = Math.min(end, this.#initialized);
    const cs = this.#ctx.clusterSize;
    if (realEnd === end && end > start) {
      const i = findRun(this.#runs, Math.floor(start / cs));
      const run = i < 0 ? undefined : this.#runs[i]!;
      if (run && run.lcn !== null && end <= (run.vcn + run.length) * cs) {
        const data = await this.#ctx.vol.read(run.lcn * cs + (start - run.vcn * cs), end - start);
        if (data.length === end - start) return data;
      }
    }
    const out = Buffer.alloc(end - start);
    if (realEnd > start) await readRuns(this.#ctx, this.#runs, start, realEnd, out, 0);
    return out;
  }
}

export class CompressedHandle implements FileHandle {
  readonly size: number;
  readonly #ctx: StreamContext;
  readonly #runs: readonly Run[];
  readonly #unitClusters: number;
  readonly #unitBytes: number;
  #last: { unit: number; data: Buffer } | undefined;

  constructor(ctx: StreamContext, runs: readonly Run[], size: number, compressionUnit: number) {
    this.#ctx = ctx;
    this.#runs = runs;
    this.size = size;
    this.#unitClusters = 2 ** compressionUnit;
    this.#unitBytes = this.#unitClusters * ctx.clusterSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const [start, end] = clamp(this.size, offset, length);
    const out = Buffer.alloc(end - start);
    for (let pos = start; pos < end;) {
      const unit = Math.floor(pos / this.#unitBytes);
      const unitStart = unit * this.#unitBytes;
      const stop = Math.min(end, unitStart + this.#unitBytes);
      const data = await this.#unit(unit);
      data.copy(out, pos - start, pos - unitStart, stop - unitStart);
      pos = stop;
    }
    return out;
  }

  async #unit(unit: number): Promise<Buffer> {
    if (this.#last?.unit === unit) return this.#last.data;
    const cs = this.#ctx.clusterSize;
    const first = unit * this.#unitClusters;
    const pieces: Array<{ lcn: number; length: number }> = [];
    let allocated = 0;
    for (let vcn = first; vcn < first + this.#unitClusters;) {
      const i = findRun(this.#runs, vcn);
      if (i < 0) {
        if (vcn === first) throw unmapped(this.#ctx, vcn);
        break; // the attribute's last unit may end before a whole unit
      }
      const run = this.#runs[i]!;
      const n = Math.min(run.vcn + run.length, first + this.#unitClusters) - vcn;
      if (run.lcn !== null) {
        pieces.push({ lcn: run.lcn + (vcn - run.vcn), length: n });
        allocated += n;
      }
      vcn += n;
    }
    const data = Buffer.alloc(this.#unitBytes);
    if (allocated > 0) {
      const raw = Buffer.alloc(allocated * cs);
      let at = 0;
      for (const p of pieces) {
        (await this.#ctx.vol.read(p.lcn * cs, p.length * cs)).copy(raw, at);
        at += p.length * cs;
      }
      if (allocated >= this.#unitClusters) raw.copy(data);
      else lznt1Decompress(raw, data, `${this.#ctx.name}: ${this.#ctx.structure} compression unit ${unit}`);
    }
    this.#last = { unit, data };
    return data;
  }
}
