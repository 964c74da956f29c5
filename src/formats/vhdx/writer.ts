/**
 * VHDX writer: dynamic, fixed and differencing images from an ordered block source, in one pass.
 *
 * Layout written (every region 1 MiB aligned):
 *   0        file identifier, headers (sequence 1 and 2, identical otherwise), region tables (2 copies)
 *   1 MiB    log (1 MiB, empty: LogGuid zero)
 *   2 MiB    metadata region (1 MiB)
 *   3 MiB    BAT (rounded up to 1 MiB)
 *   then     payload blocks (always a whole block, the last one padded) and sector bitmap blocks, appended in
 *            source order
 * Dynamic: blocks with no non-zero byte stay NOT_PRESENT. Fixed: every block FULLY_PRESENT
 * (LeaveBlocksAllocated); untouched blocks are holes of the file. Differencing: a block's sectors the source
 * gives are the child's (sector-aligned `ranges`, or the whole block); none → NOT_PRESENT (parent), all →
 * FULLY_PRESENT (or ZERO when all zero), some → PARTIALLY_PRESENT with the chunk's sector bitmap block
 * (bit 1 = the child's sector), written when the source moves past the chunk.
 * The source's block size may differ from the VHDX block size. Headers, BAT and metadata are written last; the
 * caller (formats/write.ts) writes to a temp file, fsyncs and renames, so a half-written image never has the
 * output's name.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { SvError, wrapSystemError } from '../../errors/index.js';
import { openDisk } from '../open.js';
import type { BlockSource } from '../types.js';
import type { WriteOptions } from '../write.js';
import { batEntryCount } from './bat.js';
import {
  buildFileIdentifier, buildHeader, buildMetadataRegion, buildParentLocator, buildRegionTable, writeBatEntry,
} from './build.js';
import { ZERO_GUID, randomGuid } from './guid.js';
import {
  GUIDS, HEADER_OFFSETS, MAX_BLOCK_SIZE, MAX_VIRTUAL_SIZE, MIN_BLOCK_SIZE, MiB, PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_ZERO, REGION_TABLE_OFFSETS, SB_BLOCK_PRESENT, SECTOR_BITMAP_BLOCK_SIZE, WRITER_BAT_OFFSET,
  WRITER_DYNAMIC_BLOCK_SIZE, WRITER_LOG_LENGTH, WRITER_LOG_OFFSET, WRITER_METADATA_LENGTH, WRITER_METADATA_OFFSET, chunkRatioOf,
} from './layout.js';

export interface VhdxWriteOptions extends WriteOptions {
  /** 512 (default) or 4096. */
  readonly logicalSectorSize?: number;
  /** 512 or 4096 (default, as Hyper-V). */
  readonly physicalSectorSize?: number;
  readonly creator?: string;
}

/** A block of a differencing source: `ranges` (sector-aligned, inside the block) are the bytes the child holds. */
export interface VhdxSourceBlock {
  readonly index: number;
  readonly data: Buffer | null;
  readonly ranges?: readonly { readonly offset: number; readonly length: number }[];
}

export interface VhdxBlockSource {
  readonly virtualSize: number;
  readonly blockSize: number;
  blocks(): AsyncIterable<VhdxSourceBlock>;
}

const LOG_OFFSET = WRITER_LOG_OFFSET;
const LOG_LENGTH = WRITER_LOG_LENGTH;
const METADATA_OFFSET = WRITER_METADATA_OFFSET;
const METADATA_LENGTH = WRITER_METADATA_LENGTH;
const BAT_OFFSET = WRITER_BAT_OFFSET;

function badOption(message: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_FORMAT_BAD_OPTION', message, details);
}

export async function writeVhdx(source: BlockSource | VhdxBlockSource, path: string, options: VhdxWriteOptions = {}): Promise<void> {
  const variant = options.variant ?? (options.parentPath ? 'differencing' : 'dynamic');
  const lss = options.logicalSectorSize ?? 512;
  const pss = options.physicalSectorSize ?? 4096;
  const blockSize = options.blockSize ?? (variant === 'differencing' ? 2 * MiB : WRITER_DYNAMIC_BLOCK_SIZE);
  const vsize = source.virtualSize;
  if (lss !== 512 && lss !== 4096) throw badOption(`VHDX logical sector size must be 512 or 4096, not ${lss}`, { logicalSectorSize: lss });
  if (pss !== 512 && pss !== 4096) throw badOption(`VHDX physical sector size must be 512 or 4096, not ${pss}`, { physicalSectorSize: pss });
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw badOption(`VHDX block size must be a power of two from 1 MiB to 256 MiB, not ${blockSize}`, { blockSize });
  }
  if (!Number.isSafeInteger(vsize) || vsize <= 0 || vsize > MAX_VIRTUAL_SIZE || vsize % lss !== 0) {
    throw badOption(`VHDX virtual size must be a multiple of ${lss} from ${lss} to 64 TiB, not ${vsize}`, { virtualSize: vsize });
  }
  if (!Number.isSafeInteger(source.blockSize) || source.blockSize <= 0 || source.blockSize % lss !== 0) {
    throw new SvError('SV_ERR_FORMAT_BAD_SOURCE', `block source block size ${source.blockSize} is not a positive multiple of the sector size ${lss}`, { blockSize: source.blockSize });
  }
  let parentLocator: Buffer | undefined;
  if (variant === 'differencing') parentLocator = await parentLocatorFor(options.parentPath, path, vsize, lss);
  else if (variant !== 'dynamic' && variant !== 'fixed') throw badOption(`unknown VHDX variant ${String(variant)}`, { variant });

  const hasParent = parentLocator !== undefined;
  const geometry = { blockSize, virtualSize: vsize, logicalSectorSize: lss, hasParent };
  const totalEntries = batEntryCount(geometry);
  const batLength = Math.ceil((totalEntries * 8) / MiB) * MiB;
  const bat = Buffer.alloc(totalEntries * 8);
  const chunkRatio = chunkRatioOf(lss, blockSize);
  const dataBlocks = Math.ceil(vsize / blockSize);
  const sectorsPerBlock = blockSize / lss;

  let fh: FileHandle;
  try {
    fh = await open(path, 'wx');
  } catch (err) {
    throw wrapSystemError(err, `create ${path}`);
  }
  try {
    let end = BAT_OFFSET + batLength;
    const append = async (buf: Buffer): Promise<number> => {
      const at = end;
      await fh.write(buf, 0, buf.length, at);
      end += buf.length;
      return at;
    };
    // The block being assembled, its presence per sector (differencing) and the chunk's sector bitmap.
    let curIndex = -1;
    let cur: Buffer | null = null;
    let present: Uint8Array | null = null;
    let bitmap: Buffer | null = null;
    let bitmapChunk = -1;
    let bitmapNeeded = false;
    let next = 0; // first block not yet flushed

    const flushBitmap = async (): Promise<void> => {
      if (bitmap && bitmapNeeded) {
        const at = await append(bitmap);
        writeBatEntry(bat, bitmapChunk * (chunkRatio + 1) + chunkRatio, SB_BLOCK_PRESENT, at);
      }
      bitmap = null;
      bitmapNeeded = false;
    };
    const entryOf = (b: number): number => b + Math.floor(b / chunkRatio);
    const finishBlock = async (b: number): Promise<void> => {
      const isCur = b === curIndex;
      const data = isCur ? cur : null;
      if (variant === 'fixed') {
        if (data) await fh.write(data, 0, data.length, end);
        writeBatEntry(bat, entryOf(b), PAYLOAD_BLOCK_FULLY_PRESENT, end);
        end += blockSize;
      } else if (variant === 'dynamic') {
        if (data && !isZero(data)) writeBatEntry(bat, entryOf(b), PAYLOAD_BLOCK_FULLY_PRESENT, await append(data));
      } else if (data && present) {
        const valid = Math.min(sectorsPerBlock, (vsize - b * blockSize) / lss);
        let count = 0;
        for (let s = 0; s < valid; s++) count += present[s]!;
        if (count > 0) {
          const chunk = Math.floor(b / chunkRatio);
          if (chunk !== bitmapChunk) {
            await flushBitmap();
            bitmapChunk = chunk;
          }
          bitmap ??= Buffer.alloc(SECTOR_BITMAP_BLOCK_SIZE);
          const base = (b - chunk * chunkRatio) * sectorsPerBlock;
          for (let s = 0; s < valid; s++) if (present[s]) bitmap[(base + s) >>> 3]! |= 1 << ((base + s) & 7);
          if (count === valid && isZero(data)) writeBatEntry(bat, entryOf(b), PAYLOAD_BLOCK_ZERO, 0);
          else if (count === valid) writeBatEntry(bat, entryOf(b), PAYLOAD_BLOCK_FULLY_PRESENT, await append(data));
          else {
            bitmapNeeded = true;
            writeBatEntry(bat, entryOf(b), PAYLOAD_BLOCK_PARTIALLY_PRESENT, await append(data));
          }
        }
      }
      if (isCur) {
        cur = null;
        present = null;
        curIndex = -1;
      }
    };
    const flushBefore = async (b: number): Promise<void> => {
      for (; next < b; next++) await finishBlock(next);
    };

    const finishCurrent = async (): Promise<void> => {
      const b = curIndex;
      await flushBefore(b);
      await finishBlock(b);
      next = b + 1;
    };

    let lastIndex = -1;
    const srcCount = Math.ceil(vsize / source.blockSize);
    for await (const blk of source.blocks() as AsyncIterable<VhdxSourceBlock>) {
      const { index, data } = blk;
      if (!Number.isSafeInteger(index) || index <= lastIndex || index >= srcCount) {
        throw new SvError('SV_ERR_FORMAT_BAD_SOURCE', `block source: block ${index} after ${lastIndex} (expected increasing indexes below ${srcCount})`, { index, previous: lastIndex });
      }
      lastIndex = index;
      if (!data) continue;
      const srcStart = index * source.blockSize;
      const srcLen = Math.min(source.blockSize, vsize - srcStart);
      if (data.length !== srcLen) {
        throw new SvError('SV_ERR_FORMAT_BAD_SOURCE', `block source: block ${index} has ${data.length} bytes, expected ${srcLen}`, { index, length: data.length, expected: srcLen });
      }
      // In offset order, so that the VHDX block being assembled only moves forward.
      const ranges = blk.ranges ? [...blk.ranges].sort((a, b) => a.offset - b.offset) : [{ offset: 0, length: srcLen }];
      for (const r of ranges) {
        if (r.offset % lss !== 0 || r.length % lss !== 0 || r.offset < 0 || r.length <= 0 || r.offset + r.length > srcLen) {
          throw new SvError('SV_ERR_FORMAT_BAD_SOURCE', `block source: block ${index} range ${r.offset}+${r.length} is not sector aligned inside the block`, { index, range: r });
        }
        let pos = srcStart + r.offset;
        const rEnd = pos + r.length;
        while (pos < rEnd) {
          const b = Math.floor(pos / blockSize);
          if (b !== curIndex) {
            if (curIndex >= 0) await finishCurrent();
            await flushBefore(b);
            curIndex = b;
            cur = Buffer.alloc(blockSize);
            present = hasParent ? new Uint8Array(sectorsPerBlock) : null;
          }
          const inBlock = pos - b * blockSize;
          const n = Math.min(rEnd, (b + 1) * blockSize) - pos;
          data.copy(cur!, inBlock, pos - srcStart, pos - srcStart + n);
          if (present) present.fill(1, inBlock / lss, (inBlock + n) / lss);
          pos += n;
        }
      }
    }
    if (curIndex >= 0) await finishCurrent();
    await flushBefore(dataBlocks);
    await flushBitmap();

    const dataWriteGuid = randomGuid();
    const fileWriteGuid = randomGuid();
    await fh.write(bat, 0, bat.length, BAT_OFFSET);
    const meta = buildMetadataRegion({
      blockSize, leaveBlocksAllocated: variant === 'fixed', virtualSize: vsize, logicalSectorSize: lss, physicalSectorSize: pss,
      page83: randomGuid(), ...(parentLocator ? { parentLocator } : {}),
    }, METADATA_LENGTH);
    await fh.write(meta, 0, meta.length, METADATA_OFFSET);
    const regions = buildRegionTable([
      { guid: GUIDS.batRegion, fileOffset: BAT_OFFSET, length: batLength, required: true },
      { guid: GUIDS.metadataRegion, fileOffset: METADATA_OFFSET, length: METADATA_LENGTH, required: true },
    ]);
    for (const off of REGION_TABLE_OFFSETS) await fh.write(regions, 0, regions.length, off);
    for (let i = 0; i < HEADER_OFFSETS.length; i++) {
      const h = buildHeader({ sequenceNumber: BigInt(i + 1), fileWriteGuid, dataWriteGuid, logGuid: ZERO_GUID, logLength: LOG_LENGTH, logOffset: LOG_OFFSET });
      await fh.write(h, 0, h.length, HEADER_OFFSETS[i]);
    }
    const id = buildFileIdentifier(options.creator ?? 'shadowvault');
    await fh.write(id, 0, id.length, 0);
    await fh.truncate(end);
  } catch (err) {
    throw wrapSystemError(err, `write ${path}`);
  } finally {
    await fh.close();
  }
}

const ZERO_CHUNK = Buffer.alloc(1 * MiB);

function isZero(buf: Buffer): boolean {
  for (let o = 0; o < buf.length; o += ZERO_CHUNK.length) {
    const n = Math.min(ZERO_CHUNK.length, buf.length - o);
    if (!buf.subarray(o, o + n).equals(ZERO_CHUNK.subarray(0, n))) return false;
  }
  return true;
}

/** The parent locator of a child of `parentPath` written at `childPath` (the parent must be a VHDX). */
async function parentLocatorFor(parentPath: string | undefined, childPath: string, vsize: number, lss: number): Promise<Buffer> {
  if (!parentPath) throw badOption('a differencing VHDX needs parentPath', {});
  const parent = await openDisk(parentPath);
  try {
    const info = parent.info;
    if (info.format !== 'vhdx' || !info.id) throw badOption(`parent ${parentPath} is ${info.format}, not VHDX`, { parentPath, format: info.format });
    if (info.virtualSize !== vsize) throw badOption(`parent ${parentPath} has virtual size ${info.virtualSize}, the child ${vsize}`, { parentPath, parentSize: info.virtualSize, virtualSize: vsize });
    if (info.logicalSectorSize !== lss) throw badOption(`parent ${parentPath} has logical sector size ${info.logicalSectorSize}, the child ${lss}`, { parentPath });
    const abs = resolve(parentPath);
    const rel = relative(dirname(resolve(childPath)), abs) || basename(abs);
    return buildParentLocator([
      ['parent_linkage', `{${info.id.toUpperCase()}}`],
      ['relative_path', rel.split('/').join('\\')],
      ['absolute_win32_path', abs],
    ]);
  } finally {
    await parent.close();
  }
}
