/**
 * Opening any disk image: detect the format by its magic, dispatch to the format's opener, and resolve
 * differencing parents through one chain walker (depth limit, cycle detection) shared by every format.
 *
 * Detection: "vhdxfile" at offset 0 → VHDX; "conectix" in the last 512 bytes (the VHD footer), or at offset 0
 * (the footer copy of a dynamic VHD whose end footer is damaged) → VHD; anything else → raw.
 *
 * Adding a format: write an `Opener` and put it in OPENERS below (one line). An opener never imports this
 * module: parents are opened through `ctx.openParent`, which knows the chain so far.
 */
import { realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { SvError, isSvError } from '../errors/index.js';
import { ImageFile } from './file.js';
import { openRaw } from './raw/reader.js';
import type { DiskFormat, DiskImage } from './types.js';
import { openVhd } from './vhd/reader.js';
import { openVhdx } from './vhdx/reader.js';

export interface OpenOptions {
  /** Deepest differencing chain accepted (child counts as 1). Default 64. */
  readonly maxDepth?: number;
  /** Force a format instead of detecting it. */
  readonly format?: DiskFormat;
  /** Source roots every image of the chain must lie under when opened (the appliance's; util/confined.ts). */
  readonly roots?: readonly string[];
}

export interface OpenContext {
  /** How deep this image is in the chain being opened (the image the caller asked for is 1). */
  readonly depth: number;
  /**
   * Open the parent of the image at `childPath`: tries `candidates` (absolute paths, best first) in order and
   * returns the first that exists and passes `verify` (which throws, e.g. SV_ERR_FORMAT_PARENT_MISMATCH, when
   * the candidate is not the right parent). Throws SV_ERR_FORMAT_PARENT_NOT_FOUND when no candidate exists,
   * SV_ERR_FORMAT_PARENT_CYCLE / SV_ERR_FORMAT_CHAIN_TOO_DEEP on a bad chain, or the last verify error.
   */
  openParent(childPath: string, candidates: readonly string[], verify?: (parent: DiskImage) => void): Promise<DiskImage>;
}

export type Opener = (file: ImageFile, ctx: OpenContext) => Promise<DiskImage>;

/** Format → opener. The opener owns `file` (closes it on failure and in its own close()). */
export const OPENERS: Partial<Record<DiskFormat, Opener>> = {
  vhd: openVhd,
  raw: openRaw,
  vhdx: openVhdx,
};

/** Which format a file holds, by magic. */
export async function detectFormat(file: ImageFile): Promise<DiskFormat> {
  if (file.size >= 8) {
    const head = await file.readAt(0, 8, 'format magic');
    const magic = head.toString('latin1');
    if (magic === 'vhdxfile') return 'vhdx';
    if (file.size >= 512) {
      const tail = await file.readAt(file.size - 512, 8, 'VHD footer cookie');
      if (tail.toString('latin1') === 'conectix') return 'vhd';
    }
    // A footer copy at 0 (dynamic/differencing VHD) whose end footer is missing: a VHD, even when too short to
    // hold one (the VHD opener then says truncated), rather than a raw disk of a few bytes.
    if (magic === 'conectix') return 'vhd';
  }
  return 'raw';
}

/** Open an image of any supported format, with its whole parent chain. Close it with `close()`. */
export async function openDisk(path: string, options: OpenOptions = {}): Promise<DiskImage> {
  const maxDepth = options.maxDepth ?? 64;
  return openAt(path, 1, [], maxDepth, options.format, options.roots);
}

async function openAt(path: string, depth: number, chain: readonly string[], maxDepth: number, format?: DiskFormat, roots?: readonly string[]): Promise<DiskImage> {
  if (depth > maxDepth) {
    throw new SvError('SV_ERR_FORMAT_CHAIN_TOO_DEEP', `${path}: differencing chain deeper than ${maxDepth} images (${chain.map((p) => basename(p)).join(' → ')})`, {
      path, maxDepth, chain,
    });
  }
  const real = await realpath(path).catch(() => path);
  if (chain.includes(real)) {
    throw new SvError('SV_ERR_FORMAT_PARENT_CYCLE', `${path}: differencing chain loops back to an image already in it (${[...chain, real].join(' → ')})`, {
      path, chain: [...chain, real],
    });
  }
  const file = await ImageFile.open(path, roots);
  let fmt: DiskFormat;
  try {
    fmt = format ?? (await detectFormat(file));
  } catch (err) {
    await file.close();
    throw err;
  }
  const opener = OPENERS[fmt];
  if (!opener) {
    await file.close();
    throw new SvError('SV_ERR_FORMAT_UNKNOWN', `${path}: ${fmt} images are not supported by this build`, { path, format: fmt });
  }
  const nextChain = [...chain, real];
  const ctx: OpenContext = {
    depth,
    openParent: (childPath, candidates, verify) => openParentOf(childPath, candidates, verify, depth + 1, nextChain, maxDepth, roots),
  };
  return opener(file, ctx);
}

async function openParentOf(
  childPath: string,
  candidates: readonly string[],
  verify: ((parent: DiskImage) => void) | undefined,
  depth: number,
  chain: readonly string[],
  maxDepth: number,
  roots: readonly string[] | undefined,
): Promise<DiskImage> {
  let lastError: unknown;
  const tried: string[] = [];
  for (const candidate of [...new Set(candidates)]) {
    tried.push(candidate);
    const exists = await realpath(candidate).then(() => true, () => false);
    if (!exists) continue;
    const parent = await openAt(candidate, depth, chain, maxDepth, undefined, roots);
    if (!verify) return parent;
    try {
      verify(parent);
      return parent;
    } catch (err) {
      await parent.close();
      if (!isSvError(err)) throw err;
      lastError = err;
    }
  }
  if (lastError) throw lastError;
  throw new SvError('SV_ERR_FORMAT_PARENT_NOT_FOUND', `${childPath}: parent image not found (tried ${tried.length ? tried.join(', ') : 'no locator'})`, {
    path: childPath, tried,
  });
}
