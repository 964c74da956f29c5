/**
 * Opening any disk image: detect the format by its magic, dispatch to the format's opener, and resolve
 * differencing parents through one chain walker (depth limit, cycle detection) shared by every format.
 *
 * Which format: the one asked for (e.g. --format raw), else the one the name commits to (.vhd, .vhdx, .avhdx),
 * else by content, refusing traces of a damaged VHD/VHDX rather than reading it as raw (detect.ts). Paths that
 * are not a regular file or a block device are refused before they are opened (file.ts, device.ts).
 *
 * Parents: every candidate a locator yields is tried in order (missing, not a disk, unreadable, wrong
 * identity: the next one is tried); when none fits, the error lists each candidate and why it failed. A
 * failure further up the chain (the grandparent's) is final: it is not retried through other candidates.
 *
 * Adding a format: write an `Opener` and put it in OPENERS below (one line). An opener never imports this
 * module: parents are opened through `ctx.openParent`, which knows the chain so far.
 */
import { realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { SvError, hasCode, isSvError, type SvErrorCode } from '../errors/index.js';
import { detectFormat, formatByName } from './detect.js';
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
   * returns the first that opens and passes `verify` (which throws, e.g. SV_ERR_FORMAT_PARENT_MISMATCH, when
   * the candidate is not the right parent). When none does, throws an error listing every candidate and why it
   * failed (`details.tried`), with the code of the last candidate that exists and failed to open or verify
   * (e.g. SV_ERR_FORMAT_PARENT_MISMATCH), else SV_ERR_FORMAT_PARENT_NOT_FOUND (missing, or not a disk: a
   * directory, a FIFO). A failure deeper in the chain (a grandparent) is thrown as it is.
   */
  openParent(childPath: string, candidates: readonly string[], verify?: (parent: DiskImage) => void): Promise<DiskImage>;
}

export { detectFormat };

export type Opener = (file: ImageFile, ctx: OpenContext) => Promise<DiskImage>;

/** Format → opener. The opener owns `file` (closes it on failure and in its own close()). */
export const OPENERS: Partial<Record<DiskFormat, Opener>> = {
  vhd: openVhd,
  raw: openRaw,
  vhdx: openVhdx,
};

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
    fmt = format ?? formatByName(path) ?? (await detectFormat(file));
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

/** Errors that already describe a whole parent search: passed up the chain unchanged, never retried. */
const chainFailures = new WeakSet<object>();

/** Failures that count as "not found" for the final code: unreadable, or not a disk (directory, FIFO, ...). */
const ABSENT: readonly SvErrorCode[] = ['SV_ERR_CORE_IO', 'SV_ERR_FORMAT_NOT_A_DISK'];

interface Tried {
  readonly path: string;
  readonly code: SvErrorCode;
  readonly reason: string;
  /** An image was there (it failed to open as one or to verify), as opposed to missing / not a disk. */
  readonly present: boolean;
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
  const tried: Tried[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => undefined);
    if (real === undefined) {
      tried.push({ path: candidate, code: 'SV_ERR_FORMAT_PARENT_NOT_FOUND', reason: 'not found', present: false });
      continue;
    }
    if (seen.has(real)) continue; // the same file by another name
    seen.add(real);
    let parent: DiskImage | undefined;
    try {
      parent = await openAt(candidate, depth, chain, maxDepth, undefined, roots);
      verify?.(parent);
      return parent;
    } catch (err) {
      await parent?.close();
      if (!isSvError(err) || chainFailures.has(err)) throw err;
      const reason = err.message.startsWith(`${candidate}: `) ? err.message.slice(candidate.length + 2) : err.message;
      tried.push({ path: candidate, code: err.code, reason, present: !hasCode(err, ...ABSENT) });
    }
  }
  const failed = tried.filter((t) => t.present);
  const code = failed[failed.length - 1]?.code ?? 'SV_ERR_FORMAT_PARENT_NOT_FOUND';
  const list = tried.length ? tried.map((t) => `${t.path}: ${t.reason}`).join('; ') : 'no locator names one';
  const err = new SvError(code, `${childPath}: ${failed.length ? 'no usable parent image' : 'parent image not found'} (tried ${list})`, {
    path: childPath, tried,
  });
  chainFailures.add(err);
  throw err;
}
