/**
 * A VHDX as a DiskImage: positional reads and extents through the whole differencing chain.
 *
 * Block semantics (MS-VHDX 2.5.1.1), the same for fixed and dynamic files:
 *   FULLY_PRESENT      bytes at FileOffsetMB (consecutive blocks whose file offsets follow each other are read
 *                      with one pread: large sequential reads cost one syscall per contiguous run)
 *   PARTIALLY_PRESENT  (differencing only) sector bitmap bit 1 → this file, 0 → the parent
 *   NOT_PRESENT        differencing: the parent; otherwise zeros ('unallocated')
 *   ZERO, UNMAPPED     zeros ('zero'); UNDEFINED: zeros ('unallocated'): the specification allows any content
 * A parent smaller than the child reads as zeros past its end. Sector bitmap blocks (1 MiB each) are cached,
 * at most BITMAP_CACHE of them. The image owns its file and its parent: close() closes both.
 */
import { SvError } from '../../errors/index.js';
import type { DiskImage, DiskInfo, Extent, ExtentKind } from '../types.js';
import {
  PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_STATE_NAMES, SECTOR_BITMAP_BLOCK_SIZE,
} from './layout.js';
import type { VhdxLayer } from './layer.js';

const BITMAP_CACHE = 16;
/** Largest single pread of a read request; bigger contiguous runs are split and read in parallel. */
const PIECE = 4 * 1024 * 1024;

type RunKind = 'file' | 'parent' | 'zero';

export class VhdxImage implements DiskImage {
  readonly info: DiskInfo;
  readonly layer: VhdxLayer;
  readonly #parent: DiskImage | undefined;
  readonly #bitmaps = new Map<number, Buffer>();
  #extents: Extent[] | undefined;
  #parentExtents: Extent[] | undefined;

  constructor(layer: VhdxLayer, parent?: DiskImage) {
    this.layer = layer;
    this.#parent = parent;
    const p = layer.params;
    const counts = layer.bat.stateCounts();
    const blockStates: Record<string, number> = {};
    for (const [k, v] of Object.entries(counts)) blockStates[PAYLOAD_STATE_NAMES[Number(k)] ?? k] = v;
    this.info = {
      path: layer.path,
      format: 'vhdx',
      variant: p.hasParent ? 'differencing' : p.leaveBlocksAllocated ? 'fixed' : 'dynamic',
      virtualSize: p.virtualSize,
      logicalSectorSize: p.logicalSectorSize,
      physicalSectorSize: p.physicalSectorSize,
      blockSize: p.blockSize,
      id: layer.header.dataWriteGuid,
      ...(parent ? { parent: parent.info } : {}),
      extra: {
        creator: layer.creator,
        fileWriteGuid: layer.header.fileWriteGuid,
        headerSequence: layer.header.sequenceNumber.toString(),
        currentHeader: layer.headerIndex + 1,
        page83Data: p.page83,
        leaveBlocksAllocated: p.leaveBlocksAllocated,
        chunkRatio: layer.bat.chunkRatio,
        blockStates,
        log: layer.replay
          ? { replayed: true, entries: layer.replay.entries, headSequence: layer.replay.headSequence.toString(), logGuid: layer.header.logGuid }
          : { replayed: false },
        ...(p.parentLocator ? { parentLocator: Object.fromEntries(p.parentLocator.entries) } : {}),
      },
    };
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    const size = this.info.virtualSize;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new SvError('SV_ERR_FORMAT_READ_RANGE', `${this.layer.path}: read of ${length} bytes at ${offset} is outside the virtual disk (0..${size})`, {
        path: this.layer.path, offset, length, virtualSize: size,
      });
    }
    if (target && target.length < length) {
      throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `read target of ${target.length} bytes is shorter than ${length}`, { length, target: target.length });
    }
    const buf = target ?? Buffer.allocUnsafe(length);
    await this.#readInto(offset, length, buf, 0);
    return buf;
  }

  async #readInto(offset: number, length: number, buf: Buffer, at: number): Promise<void> {
    const { bat } = this.layer;
    const B = this.info.blockSize;
    const diff = this.#parent !== undefined;
    let kind: RunKind | undefined;
    let runV = 0;
    let runFile = 0;
    let runLen = 0;
    // Runs are issued without waiting for one another: file runs are split into PIECE-sized preads that libuv
    // runs in parallel (page-cache copies use both cores); all are awaited at the end.
    const pending: Promise<unknown>[] = [];
    const flush = async (): Promise<void> => {
      if (!kind || runLen === 0) return;
      const t = at + runV - offset;
      if (kind === 'file') {
        for (let o = 0; o < runLen; o += PIECE) {
          pending.push(this.layer.view.read(runFile + o, Math.min(PIECE, runLen - o), 'payload block', buf, t + o));
        }
      } else if (kind === 'zero') buf.fill(0, t, t + runLen);
      else pending.push(this.#readParent(runV, runLen, buf, t));
      kind = undefined;
      runLen = 0;
    };
    const push = async (k: RunKind, v: number, n: number, fileOff: number): Promise<void> => {
      if (kind === k && runV + runLen === v && (k !== 'file' || runFile + runLen === fileOff)) {
        runLen += n;
        return;
      }
      await flush();
      kind = k;
      runV = v;
      runFile = fileOff;
      runLen = n;
    };
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const block = Math.floor(pos / B);
      const blockStart = block * B;
      const n = Math.min(end, blockStart + B) - pos;
      const state = bat.payloadState(block);
      if (state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        await push('file', pos, n, bat.payloadOffset(block) + (pos - blockStart));
      } else if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        const fileBase = bat.payloadOffset(block) - blockStart;
        for (const r of await this.#sectorRuns(block, pos, pos + n)) {
          await push(r.present ? 'file' : 'parent', r.start, r.end - r.start, fileBase + r.start);
        }
      } else if (state === PAYLOAD_BLOCK_NOT_PRESENT && diff) {
        await push('parent', pos, n, 0);
      } else {
        await push('zero', pos, n, 0);
      }
      pos += n;
    }
    await flush();
    const results = await Promise.allSettled(pending);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async #readParent(offset: number, length: number, buf: Buffer, at: number): Promise<void> {
    const parent = this.#parent!;
    const inParent = Math.max(0, Math.min(length, parent.info.virtualSize - offset));
    if (inParent > 0) await parent.read(offset, inParent, buf.subarray(at, at + inParent));
    if (inParent < length) buf.fill(0, at + inParent, at + length);
  }

  /** Runs of [start, end) (virtual offsets inside one PARTIALLY_PRESENT block) by sector bitmap bit. */
  async #sectorRuns(block: number, start: number, end: number): Promise<{ start: number; end: number; present: boolean }[]> {
    const { bat } = this.layer;
    const lss = this.info.logicalSectorSize;
    const chunk = Math.floor(block / bat.chunkRatio);
    const bitmap = await this.#bitmap(chunk);
    const chunkStartSector = chunk * bat.chunkRatio * (this.info.blockSize / lss);
    const runs: { start: number; end: number; present: boolean }[] = [];
    let s = Math.floor(start / lss);
    const last = Math.ceil(end / lss);
    while (s < last) {
      const bit = s - chunkStartSector;
      const present = (bitmap[bit >>> 3]! >>> (bit & 7) & 1) === 1;
      let e = s + 1;
      while (e < last) {
        const b = e - chunkStartSector;
        if ((bitmap[b >>> 3]! >>> (b & 7) & 1) === 1 !== present) break;
        e++;
      }
      runs.push({ start: Math.max(start, s * lss), end: Math.min(end, e * lss), present });
      s = e;
    }
    return runs;
  }

  async #bitmap(chunk: number): Promise<Buffer> {
    const hit = this.#bitmaps.get(chunk);
    if (hit) {
      this.#bitmaps.delete(chunk);
      this.#bitmaps.set(chunk, hit);
      return hit;
    }
    const buf = await this.layer.view.read(this.layer.bat.bitmapOffset(chunk), SECTOR_BITMAP_BLOCK_SIZE, `sector bitmap block ${chunk}`);
    if (this.#bitmaps.size >= BITMAP_CACHE) this.#bitmaps.delete(this.#bitmaps.keys().next().value!);
    this.#bitmaps.set(chunk, buf);
    return buf;
  }

  async extents(): Promise<Extent[]> {
    if (this.#extents) return this.#extents;
    const { bat } = this.layer;
    const B = this.info.blockSize;
    const size = this.info.virtualSize;
    const out: Extent[] = [];
    const emit = (offset: number, length: number, kind: ExtentKind): void => {
      if (length <= 0) return;
      const prev = out[out.length - 1];
      if (prev && prev.kind === kind && prev.offset + prev.length === offset) out[out.length - 1] = { offset: prev.offset, length: prev.length + length, kind };
      else out.push({ offset, length, kind });
    };
    const fromParent = async (start: number, end: number): Promise<void> => {
      for (const e of await this.#parentExtentsIn(start, end)) emit(e.offset, e.length, e.kind);
    };
    const diff = this.#parent !== undefined;
    for (let block = 0; block < bat.dataBlocks; block++) {
      const start = block * B;
      const end = Math.min(size, start + B);
      const state = bat.payloadState(block);
      if (state === PAYLOAD_BLOCK_FULLY_PRESENT) emit(start, end - start, 'data');
      else if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        for (const r of await this.#sectorRuns(block, start, end)) {
          if (r.present) emit(r.start, r.end - r.start, 'data');
          else await fromParent(r.start, r.end);
        }
      } else if (state === PAYLOAD_BLOCK_NOT_PRESENT) {
        if (diff) await fromParent(start, end);
        else emit(start, end - start, 'unallocated');
      } else emit(start, end - start, state === PAYLOAD_BLOCK_UNDEFINED ? 'unallocated' : 'zero');
    }
    this.#extents = out;
    return out;
  }

  /** The parent's extents clipped to [start, end); past the parent's end: unallocated. */
  async #parentExtentsIn(start: number, end: number): Promise<Extent[]> {
    const parent = this.#parent!;
    this.#parentExtents ??= await parent.extents();
    const all = this.#parentExtents;
    const res: Extent[] = [];
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = all[mid]!;
      if (e.offset + e.length <= start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < all.length && all[i]!.offset < end; i++) {
      const e = all[i]!;
      const a = Math.max(start, e.offset);
      const b = Math.min(end, e.offset + e.length);
      if (b > a) res.push({ offset: a, length: b - a, kind: e.kind });
    }
    const covered = Math.min(end, Math.max(start, parent.info.virtualSize));
    if (covered < end) res.push({ offset: covered, length: end - covered, kind: 'unallocated' });
    return res;
  }

  async close(): Promise<void> {
    try {
      await this.layer.file.close();
    } finally {
      await this.#parent?.close();
    }
  }
}
