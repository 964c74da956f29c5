/**
 * VHD reader: fixed, dynamic and differencing images (Microsoft "Virtual Hard Disk Image Format Specification").
 *
 * - fixed: the data is the first `virtualSize` bytes of the file; one data extent.
 * - dynamic: blocks through the BAT; a sector whose bitmap bit is 0 (or a block not allocated) reads as zero.
 * - differencing: like dynamic, but sectors whose bit is 0 and unallocated blocks come from the parent, which
 *   is found through the locators (W2ru, MacX, W2ku, then the parent's name next to the child), opened through
 *   the shared chain walker (depth limit, cycle detection) and checked: its footer unique id must equal the
 *   child's header Parent Unique ID. A parent time stamp that differs is reported in info, not refused
 *   (copying a chain changes modification times).
 *
 * Reads are planned per request: whole-block runs become one pread straight into the caller's buffer, the
 * preads of one request are issued together (libuv runs them in parallel), and only partially populated
 * blocks walk their bitmap (in runs, not per sector). Read-only; no locks (the source is never modified).
 */
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { SvError } from '../../errors/index.js';
import { ExtentBuilder, checkReadRange } from '../common.js';
import type { ImageFile } from '../file.js';
import type { OpenContext } from '../open.js';
import { uuidText } from '../struct.js';
import type { DiskImage, DiskInfo, Extent } from '../types.js';
import { BlockMap, BlockState, type Reserved } from './blockmap.js';
import { parentUnicodeName, readDynHeader, readFooter, readLocators, virtualSizeOf, type DynHeader, type Footer, type Locator } from './meta.js';
import { DYN_HEADER_SIZE, DiskType, FOOTER_SIZE, Platform, VHD_EPOCH, bitmapBytes } from './structs.js';

export async function openVhd(file: ImageFile, ctx: OpenContext): Promise<DiskImage> {
  let parent: DiskImage | undefined;
  try {
    const found = await readFooter(file);
    const { footer } = found;
    const size = virtualSizeOf(footer);
    const extra: Record<string, unknown> = {
      creatorApplication: footer.creatorApplication,
      creatorVersion: `${footer.creatorVersion >>> 16}.${footer.creatorVersion & 0xffff}`,
      creatorHostOs: footer.creatorHostOs,
      timeStamp: new Date((footer.timeStamp + VHD_EPOCH) * 1000).toISOString(),
      timeStampRaw: footer.timeStamp,
      currentSize: footer.currentSize,
      originalSize: footer.originalSize,
      geometry: { cylinders: footer.cylinders, heads: footer.heads, sectorsPerTrack: footer.sectorsPerTrack },
      sizeRule: size.rule,
      sizeRuleReason: size.why,
      footerSource: found.source,
      savedState: footer.savedState !== 0,
      warnings: found.warnings,
    };
    const base = {
      path: file.path, format: 'vhd' as const, virtualSize: size.virtualSize, logicalSectorSize: 512, physicalSectorSize: 512,
      id: uuidText(footer.uniqueId),
    };
    if (footer.diskType === DiskType.fixed) {
      const dataEnd = found.source === 'end' ? file.size - FOOTER_SIZE : file.size;
      if (size.virtualSize > dataEnd) {
        throw new SvError('SV_ERR_FORMAT_TRUNCATED', `${file.path}: fixed VHD of ${size.virtualSize} bytes (${size.rule}) but only ${dataEnd} bytes of data before the footer`, {
          path: file.path, structure: 'VHD fixed data', offset: 0, expected: size.virtualSize, found: dataEnd,
        });
      }
      return new FixedVhd(file, { ...base, variant: 'fixed', blockSize: 2 << 20, extra });
    }
    const header = await readDynHeader(file, footer);
    const differencing = footer.diskType === DiskType.differencing;
    const locators = differencing ? await readLocators(file, header, footer.dataOffset) : [];
    const map = await loadMap(file, footer, header, size.virtualSize, found.source, locators);
    extra.tableOffset = header.tableOffset;
    extra.maxTableEntries = header.maxTableEntries;
    extra.allocatedBlocks = map.allocatedBlocks;
    extra.totalBlocks = map.count;
    if (footer.diskType === DiskType.dynamic) {
      return new DynamicVhd(file, map, undefined, { ...base, variant: 'dynamic', blockSize: header.blockSize, extra });
    }
    const parentId = uuidText(header.parentUniqueId);
    const name = parentUnicodeName(header);
    parent = await ctx.openParent(file.path, parentCandidates(file.path, locators, name), (p) => {
      if (p.info.format !== 'vhd' || p.info.id !== parentId) {
        throw new SvError('SV_ERR_FORMAT_PARENT_MISMATCH', `${file.path}: parent ${p.info.path} has ${p.info.format} id ${p.info.id ?? 'none'}, but the child's dynamic disk header (offset ${footer.dataOffset + 40}) expects VHD unique id ${parentId}`, {
          path: file.path, structure: 'VHD dynamic disk header', offset: footer.dataOffset + 40, parent: p.info.path, expected: parentId, found: p.info.id ?? null,
        });
      }
    });
    const parentStamp = parent.info.extra.timeStampRaw;
    extra.parent = {
      uniqueId: parentId,
      unicodeName: name,
      timeStamp: new Date((header.parentTimeStamp + VHD_EPOCH) * 1000).toISOString(),
      timeStampMatches: parentStamp === header.parentTimeStamp,
      locators: locators.map((l) => ({ platform: l.platform, path: l.path })),
      resolvedPath: parent.info.path,
    };
    if (parentStamp !== header.parentTimeStamp) {
      (extra.warnings as string[]).push(`parent time stamp ${header.parentTimeStamp} differs from the parent footer's ${String(parentStamp)}`);
    }
    return new DynamicVhd(file, map, parent, { ...base, variant: 'differencing', blockSize: header.blockSize, parent: parent.info, extra });
  } catch (err) {
    await parent?.close();
    await file.close();
    throw err;
  }
}

/** Most BAT entries read (a 256 MiB table: 2 TiB in 32 KiB blocks); bounds memory whatever the header claims. */
const MAX_BAT_ENTRIES = 64 << 20;

async function loadMap(file: ImageFile, footer: Footer, header: DynHeader, virtualSize: number, source: string, locators: readonly Locator[]): Promise<BlockMap> {
  const count = Math.ceil(virtualSize / header.blockSize);
  if (count > header.maxTableEntries) {
    throw new SvError('SV_ERR_VHD_BAD_SIZE', `${file.path}: VHD dynamic disk header (offset ${footer.dataOffset}): ${header.maxTableEntries} table entries of ${header.blockSize} bytes cannot hold a virtual size of ${virtualSize}`, {
      path: file.path, structure: 'VHD dynamic disk header', offset: footer.dataOffset + 28, expected: `>= ${count}`, found: header.maxTableEntries,
    });
  }
  if (count > MAX_BAT_ENTRIES) {
    throw new SvError('SV_ERR_VHD_BAD_SIZE', `${file.path}: VHD dynamic disk header (offset ${footer.dataOffset}): ${count} blocks of ${header.blockSize} bytes for ${virtualSize} bytes is more than the ${MAX_BAT_ENTRIES} this reader accepts`, {
      path: file.path, structure: 'VHD dynamic disk header', offset: footer.dataOffset + 32, expected: `<= ${MAX_BAT_ENTRIES} blocks`, found: count,
    });
  }
  const bm = bitmapBytes(header.blockSize);
  const batBytes = Math.ceil((header.maxTableEntries * 4) / 512) * 512;
  const reserved: Reserved[] = [
    { name: 'footer copy', offset: 0, length: FOOTER_SIZE },
    { name: 'dynamic disk header', offset: footer.dataOffset, length: DYN_HEADER_SIZE },
    { name: 'block allocation table', offset: header.tableOffset, length: batBytes },
  ];
  for (const l of locators) reserved.push({ name: `parent locator ${l.platform} data`, offset: l.offset, length: l.length });
  return BlockMap.load(file, {
    tableOffset: header.tableOffset, count, blockSize: header.blockSize, bitmapBytes: bm, virtualSize,
    dataEnd: source === 'end' ? file.size - FOOTER_SIZE : file.size, reserved,
  });
}

/** Where the parent may be, best first: relative locators, then absolute ones, then names next to the child. */
export function parentCandidates(childPath: string, locators: readonly Locator[], unicodeName: string): string[] {
  const dir = dirname(childPath);
  const local = (p: string) => p.replace(/\\/gu, '/');
  const out: string[] = [];
  const names: string[] = [];
  const order = [Platform.W2ru, Platform.Wi2r, Platform.MacX, Platform.W2ku, Platform.Wi2k];
  for (const code of order) {
    for (const l of locators) {
      if (l.platform !== code || !l.path) continue;
      const p = local(l.path);
      if (code === Platform.W2ru || code === Platform.Wi2r) out.push(resolve(dir, p));
      else if (isAbsolute(p)) out.push(p);
      names.push(basename(p));
    }
  }
  if (unicodeName) names.push(basename(local(unicodeName)));
  for (const n of names) if (n && n !== '.' && n !== '..') out.push(resolve(dir, n));
  return out;
}

class FixedVhd implements DiskImage {
  readonly info: DiskInfo;
  readonly #file: ImageFile;

  constructor(file: ImageFile, info: DiskInfo) {
    this.#file = file;
    this.info = info;
  }

  async extents(): Promise<Extent[]> {
    return this.info.virtualSize > 0 ? [{ offset: 0, length: this.info.virtualSize, kind: 'data' }] : [];
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    checkReadRange(this.#file.path, this.info.virtualSize, offset, length, target);
    return this.#file.readAt(offset, length, 'VHD fixed data', target);
  }

  async close(): Promise<void> {
    await this.#file.close();
  }
}

class DynamicVhd implements DiskImage {
  readonly info: DiskInfo;
  readonly #file: ImageFile;
  readonly #map: BlockMap;
  readonly #parent: DiskImage | undefined;

  constructor(file: ImageFile, map: BlockMap, parent: DiskImage | undefined, info: DiskInfo) {
    this.#file = file;
    this.#map = map;
    this.#parent = parent;
    this.info = info;
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    checkReadRange(this.#file.path, this.info.virtualSize, offset, length, target);
    const out = target ?? Buffer.allocUnsafe(length);
    const map = this.#map;
    const bs = map.blockSize;
    const end = offset + length;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    if (length === 0) return out;
    const blocks: number[] = [];
    for (let i = first; i <= last; i++) blocks.push(i);
    await map.prefetch(blocks);
    const ops: Array<Promise<unknown>> = [];
    for (const i of blocks) {
      const blockStart = i * bs;
      const from = Math.max(offset, blockStart) - blockStart;
      const to = Math.min(end, blockStart + bs) - blockStart;
      const state = await map.state(i);
      if (state === BlockState.Full) {
        ops.push(this.#file.readAt(map.dataOffset(i) + from, to - from, `VHD block ${i} data`, out, blockStart + from - offset));
      } else if (state === BlockState.Unallocated || state === BlockState.Empty) {
        ops.push(this.#absent(blockStart + from, to - from, out, blockStart + from - offset));
      } else {
        // Partial block: the absent bytes in one go (zeros, or one parent read), then the present runs over them.
        const present: Array<[number, number]> = [];
        await map.runs(i, from, to, (s, e, here) => { if (here) present.push([s, e]); });
        ops.push((async () => {
          await this.#absent(blockStart + from, to - from, out, blockStart + from - offset);
          await Promise.all(present.map(([s, e]) => this.#file.readAt(map.dataOffset(i) + s, e - s, `VHD block ${i} data`, out, blockStart + s - offset)));
        })());
      }
    }
    await Promise.all(ops);
    return out;
  }

  /** Bytes not stored here: zero for a dynamic disk, the parent's for a differencing one. */
  async #absent(vOffset: number, length: number, out: Buffer, at: number): Promise<void> {
    const parent = this.#parent;
    const inParent = parent ? Math.max(0, Math.min(length, parent.info.virtualSize - vOffset)) : 0;
    if (parent && inParent > 0) await parent.read(vOffset, inParent, out.subarray(at, at + inParent));
    if (inParent < length) out.fill(0, at + inParent, at + length);
  }

  async extents(): Promise<Extent[]> {
    const map = this.#map;
    const bs = map.blockSize;
    const all: number[] = [];
    for (let i = 0; i < map.count; i++) if (map.stateKnown(i) !== BlockState.Unallocated) all.push(i);
    await map.prefetch(all);
    // Own map: 'data' where stored here, 'unallocated' where not (to be filled from the parent).
    const own = new ExtentBuilder();
    for (let i = 0; i < map.count; i++) {
      const start = i * bs;
      const len = Math.min(bs, this.info.virtualSize - start);
      const state = await map.state(i);
      if (state === BlockState.Full) own.push(start, len, 'data');
      else if (state === BlockState.Unallocated || state === BlockState.Empty) own.push(start, len, 'unallocated');
      else await map.runs(i, 0, len, (s, e, present) => own.push(start + s, e - s, present ? 'data' : 'unallocated'));
    }
    const mine = own.done();
    if (!this.#parent) return mine;
    return overlay(mine, await this.#parent.extents());
  }

  async close(): Promise<void> {
    await this.#file.close();
    await this.#parent?.close();
  }
}

/** The child's 'data' extents win; its 'unallocated' ranges take the parent's kinds (unallocated past the parent's end). */
export function overlay(child: readonly Extent[], parent: readonly Extent[]): Extent[] {
  const out = new ExtentBuilder();
  let p = 0;
  for (const c of child) {
    if (c.kind !== 'unallocated') {
      out.push(c.offset, c.length, c.kind);
      continue;
    }
    const cEnd = c.offset + c.length;
    while (p < parent.length && parent[p]!.offset + parent[p]!.length <= c.offset) p++;
    let pos = c.offset;
    for (let k = p; k < parent.length && parent[k]!.offset < cEnd; k++) {
      const e = parent[k]!;
      const s = Math.max(pos, e.offset);
      const t = Math.min(cEnd, e.offset + e.length);
      if (s > pos) out.push(pos, s - pos, 'unallocated');
      out.push(s, t - s, e.kind);
      pos = t;
    }
    if (pos < cEnd) out.push(pos, cEnd - pos, 'unallocated');
  }
  return out.done();
}
