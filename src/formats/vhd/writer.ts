/**
 * VHD writers: fixed, dynamic and differencing, streaming from an ordered BlockSource.
 *
 * Dynamic / differencing layout written: [footer copy][dynamic header @512][BAT @1536, sector padded]
 * [parent locator data, 512-aligned (differencing)][blocks: bitmap + data, appended in source order][footer].
 * Zero and null blocks stay unallocated (BAT 0xFFFFFFFF). Blocks are re-cut to the VHD block size
 * (default 2 MiB). The BAT and headers are written after the blocks, the end footer last.
 *
 * Differencing: the child records the parent's unique id and time stamp, and locators W2ru (relative),
 * W2ku (absolute) and MacX (file URL). A block the source gives as null inherits the parent; for a block with
 * data, only the sectors that differ from the parent are marked present in its sector bitmap (a block equal to
 * the parent is not stored). Fixed: the data, holes where zero, then the footer.
 *
 * Sizes are rounded up to whole sectors (the extra bytes read as zero). The caller (writeDisk) provides a
 * fresh temp path and renames it; nothing here locks.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SvError, wrapSystemError } from '../../errors/index.js';
import { isZero } from '../common.js';
import { openDisk } from '../open.js';
import { rechunk } from '../source.js';
import { U64_ALL_ONES } from '../struct.js';
import type { BlockSource, DiskImage } from '../types.js';
import type { WriteOptions } from '../write.js';
import { encodeDynHeader, encodeFooter, newUniqueId, vhdNow, type LocatorEntry } from './build.js';
import { DYN_HEADER_SIZE, DiskType, FOOTER_SIZE, Platform, SECTOR, VHD_MAX_SIZE, bitmapBytes } from './structs.js';

export const VHD_DEFAULT_BLOCK = 2 << 20;

export async function writeVhd(source: BlockSource, path: string, options: WriteOptions): Promise<void> {
  const size = Math.ceil(source.virtualSize / SECTOR) * SECTOR;
  if (!Number.isSafeInteger(size) || size < 0 || size > VHD_MAX_SIZE) {
    throw new SvError('SV_ERR_VHD_TOO_LARGE', `${path}: a VHD holds at most ${VHD_MAX_SIZE} bytes; the source has ${source.virtualSize}`, {
      path, expected: `<= ${VHD_MAX_SIZE}`, found: source.virtualSize,
    });
  }
  const variant = options.variant ?? 'dynamic';
  const blockSize = options.blockSize ?? VHD_DEFAULT_BLOCK;
  if (variant !== 'fixed' && (blockSize < SECTOR * 8 || blockSize > 256 << 20 || (blockSize & (blockSize - 1)) !== 0)) {
    throw new SvError('SV_ERR_FORMAT_BAD_OPTION', `${path}: VHD block size ${blockSize} must be a power of two from 4096 to 256 MiB`, { path, blockSize });
  }
  const fh = await open(path, 'wx').catch((err: unknown) => { throw wrapSystemError(err, `create ${path}`); });
  try {
    if (variant === 'fixed') await writeFixed(fh, source, size, path);
    else if (variant === 'dynamic') await writeSparse(fh, source, size, blockSize, path, undefined);
    else {
      if (!options.parentPath) throw new SvError('SV_ERR_FORMAT_BAD_OPTION', `${path}: a differencing VHD needs a parent path`, { path });
      const parent = await openDisk(options.parentPath);
      try {
        if (parent.info.format !== 'vhd') {
          throw new SvError('SV_ERR_FORMAT_BAD_OPTION', `${path}: the parent of a VHD must be a VHD; ${options.parentPath} is ${parent.info.format}`, { path, parent: options.parentPath });
        }
        if (parent.info.virtualSize !== size) {
          throw new SvError('SV_ERR_FORMAT_BAD_OPTION', `${path}: child size ${size} differs from parent ${options.parentPath} size ${parent.info.virtualSize}`, {
            path, parent: options.parentPath, expected: parent.info.virtualSize, found: size,
          });
        }
        await writeSparse(fh, source, size, blockSize, path, { image: parent, path: resolve(options.parentPath) });
      } finally {
        await parent.close();
      }
    }
  } catch (err) {
    throw wrapSystemError(err, `write ${path}`);
  } finally {
    await fh.close();
  }
}

async function writeFixed(fh: FileHandle, source: BlockSource, size: number, path: string): Promise<void> {
  await fh.truncate(size);
  for await (const { index, data } of rechunk(source, source.blockSize, path)) {
    if (data && !isZero(data)) await writeAll(fh, [data], index * source.blockSize);
  }
  await writeAll(fh, [encodeFooter({ diskType: DiskType.fixed, size, dataOffset: U64_ALL_ONES, uniqueId: newUniqueId(), timeStamp: vhdNow() })], size);
}

interface ParentRef {
  readonly image: DiskImage;
  readonly path: string;
}

async function writeSparse(fh: FileHandle, source: BlockSource, size: number, blockSize: number, path: string, parent: ParentRef | undefined): Promise<void> {
  const count = Math.ceil(size / blockSize);
  const tableOffset = FOOTER_SIZE + DYN_HEADER_SIZE;
  const batBytes = Math.ceil((count * 4) / SECTOR) * SECTOR;
  let next = tableOffset + batBytes;
  const locators: LocatorEntry[] = [];
  if (parent) {
    for (const [platform, data] of parentLocators(path, parent.path)) {
      const space = Math.ceil(data.length / SECTOR) * SECTOR;
      locators.push({ platform, data, offset: next, space });
      next += space;
    }
  }
  const bm = bitmapBytes(blockSize);
  const bat = Buffer.alloc(batBytes, 0xff);
  const fullBitmap = Buffer.alloc(bm, 0);
  fullBitmap.fill(0xff, 0, blockSize / SECTOR / 8);
  const fromParent = parent ? (offset: number, into: Buffer) => readParent(parent.image, offset, into) : undefined;
  for await (const { index, data } of rechunk(source, blockSize, path, fromParent)) {
    if (data === null) continue;
    let bitmap: Buffer = fullBitmap;
    if (parent) {
      const diff = await diffBitmap(parent.image, data, index * blockSize, bm);
      if (!diff) continue;
      bitmap = diff;
    } else if (isZero(data)) continue;
    const parts = data.length === blockSize ? [bitmap, data] : [bitmap, data, Buffer.alloc(blockSize - data.length)];
    await writeAll(fh, parts, next);
    bat.writeUInt32BE(next / SECTOR, index * 4);
    next += bm + blockSize;
  }
  const uniqueId = newUniqueId();
  const timeStamp = vhdNow();
  const footer = encodeFooter({ diskType: parent ? DiskType.differencing : DiskType.dynamic, size, dataOffset: FOOTER_SIZE, uniqueId, timeStamp });
  const header = encodeDynHeader({
    tableOffset, maxTableEntries: count, blockSize,
    parentUniqueId: parent ? Buffer.from(parent.image.info.id!.replace(/-/gu, ''), 'hex') : undefined,
    parentTimeStamp: parent ? Number(parent.image.info.extra.timeStampRaw ?? 0) : undefined,
    parentName: parent ? basename(parent.path) : undefined,
    locators,
  });
  await writeAll(fh, [footer, header, bat], 0);
  for (const l of locators) await writeAll(fh, [l.data, Buffer.alloc(l.space - l.data.length)], l.offset);
  await writeAll(fh, [footer], next);
}

/** Locator data for a child at `childPath` whose parent is `parentPath` (absolute): W2ru, W2ku, MacX. */
function parentLocators(childPath: string, parentPath: string): Array<[string, Buffer]> {
  let rel = relative(dirname(resolve(childPath)), parentPath).split('/').join('\\');
  if (!rel.startsWith('..')) rel = `.\\${rel}`;
  return [
    [Platform.W2ru, Buffer.from(rel, 'utf16le')],
    [Platform.W2ku, Buffer.from(parentPath, 'utf16le')],
    [Platform.MacX, Buffer.from(pathToFileURL(parentPath).href, 'utf8')],
  ];
}

/** The parent's bytes at `offset` into `into` (zero past its end). */
async function readParent(parent: DiskImage, offset: number, into: Buffer): Promise<void> {
  const inParent = Math.max(0, Math.min(into.length, parent.info.virtualSize - offset));
  if (inParent > 0) await parent.read(offset, inParent, into);
  into.fill(0, inParent);
}

/** Sector bitmap of the sectors of `data` that differ from the parent at `offset`; null when none differ. */
async function diffBitmap(parent: DiskImage, data: Buffer, offset: number, bm: number): Promise<Buffer | null> {
  const theirs = Buffer.alloc(data.length);
  await readParent(parent, offset, theirs);
  if (theirs.equals(data)) return null;
  const bitmap = Buffer.alloc(bm);
  for (let s = 0; s * SECTOR < data.length; s++) {
    const a = s * SECTOR;
    const b = Math.min(data.length, a + SECTOR);
    if (Buffer.compare(data.subarray(a, b), theirs.subarray(a, b)) !== 0) bitmap[s >> 3]! |= 0x80 >> (s & 7);
  }
  return bitmap;
}

async function writeAll(fh: FileHandle, parts: Buffer[], position: number): Promise<void> {
  let pos = position;
  let rest = parts.filter((p) => p.length > 0);
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos);
    pos += bytesWritten;
    let n = bytesWritten;
    const left: Buffer[] = [];
    for (const p of rest) {
      if (n >= p.length) { n -= p.length; continue; }
      left.push(n > 0 ? p.subarray(n) : p);
      n = 0;
    }
    rest = left;
  }
}
