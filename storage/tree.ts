/**
 * Index page trees: how a disk of a recovery point names its blocks without costing metadata proportional to
 * the disk when little changed.
 *
 * Shape: blocks 0..blockCount-1 (blockSize bytes each, the last may be short). Level-0 pages ("leaves") hold
 * the 32-byte digests of up to `fanout` consecutive blocks; a page of level k>0 holds the digests of up to
 * `fanout` consecutive pages of level k-1; the single page of the top level is the root, whose digest the
 * manifest records. A page is exactly childCount × 32 bytes (the last page of a level may be short), no header:
 * its place in the tree gives its meaning. Pages are blobs like blocks (content-addressed, compressed, in packs).
 *
 * The all-zero digest stands for an all-zero block and for a page whose children are all zero digests: such a
 * page is never stored, so a sparse 2 TiB disk costs a handful of pages. Unchanged subtrees keep their digest
 * and are shared between points: a backup rewrites only the leaves it touched and their ancestors.
 */
import { SvError } from '../src/errors/index.js';
import { isZeroDigest } from './codec.js';
import { DIGEST_SIZE } from './layout.js';

export interface TreeShape {
  readonly blockSize: number;
  readonly blockCount: number;
  readonly fanout: number;
  /** Node count per level: [leaves, level 1, ..., 1 (root)]. */
  readonly levelCounts: readonly number[];
  readonly depth: number;
}

export function treeShape(virtualSize: number, blockSize: number, fanout: number): TreeShape {
  const blockCount = Math.ceil(virtualSize / blockSize);
  const levelCounts = [Math.max(1, Math.ceil(blockCount / fanout))];
  while (levelCounts[levelCounts.length - 1]! > 1) levelCounts.push(Math.ceil(levelCounts[levelCounts.length - 1]! / fanout));
  return { blockSize, blockCount, fanout, levelCounts, depth: levelCounts.length };
}

/** Number of children of page `i` at `level`. */
export function childCount(shape: TreeShape, level: number, i: number): number {
  const below = level === 0 ? shape.blockCount : shape.levelCounts[level - 1]!;
  return Math.max(0, Math.min(shape.fanout, below - i * shape.fanout));
}

/** Reads a page's raw bytes by digest (digest-checked). */
export type PageReader = (digest: Buffer) => Promise<Buffer>;

/** Read and size-check one page; an all-zero digest yields zeros. */
export async function readPage(read: PageReader, shape: TreeShape, level: number, i: number, digest: Buffer): Promise<Buffer> {
  const size = childCount(shape, level, i) * DIGEST_SIZE;
  if (isZeroDigest(digest)) return Buffer.alloc(size);
  const page = await read(digest);
  if (page.length !== size) {
    throw new SvError('SV_ERR_STORE_CORRUPT_PAGE', `index page ${digest.toString('hex')} (level ${level}, page ${i}): ${page.length} bytes, expected ${size} (${size / DIGEST_SIZE} digests)`, {
      digest: digest.toString('hex'), level, page: i, size: page.length, expected: size,
    });
  }
  return page;
}

/**
 * Digests of every node of every level but the leaves' children: levels[k] = concatenated digests of the
 * pages of level k (levels[depth-1] = the root). Reads every inner page (for 2 TiB at 64 KiB: 33 pages).
 */
export async function loadLevels(read: PageReader, shape: TreeShape, root: Buffer): Promise<Buffer[]> {
  const levels: Buffer[] = new Array<Buffer>(shape.depth);
  levels[shape.depth - 1] = Buffer.from(root);
  for (let level = shape.depth - 1; level >= 1; level--) {
    const parent = levels[level]!;
    const out = Buffer.alloc(shape.levelCounts[level - 1]! * DIGEST_SIZE);
    for (let i = 0; i < shape.levelCounts[level]!; i++) {
      const page = await readPage(read, shape, level, i, parent.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE));
      page.copy(out, i * shape.fanout * DIGEST_SIZE);
    }
    levels[level - 1] = out;
  }
  return levels;
}

/** Levels of an all-zero disk (no previous point). */
export function zeroLevels(shape: TreeShape): Buffer[] {
  return shape.levelCounts.map((n) => Buffer.alloc(n * DIGEST_SIZE));
}

/** Writes a page (not all zero) and returns its digest. */
export type PageWriter = (page: Buffer) => Promise<Buffer>;

/**
 * Recompute levels 1..depth-1 from new leaf digests in levels[0], writing only pages whose children changed
 * compared with `old` (which has the same shape). Returns the root digest and the number of pages written.
 */
export async function buildUpper(shape: TreeShape, levels: Buffer[], old: readonly Buffer[], write: PageWriter): Promise<{ root: Buffer; pagesWritten: number }> {
  let pagesWritten = 0;
  for (let level = 1; level < shape.depth; level++) {
    const below = levels[level - 1]!;
    const oldBelow = old[level - 1]!;
    const out = Buffer.from(old[level]!);
    for (let i = 0; i < shape.levelCounts[level]!; i++) {
      const start = i * shape.fanout * DIGEST_SIZE;
      const end = start + childCount(shape, level, i) * DIGEST_SIZE;
      if (below.compare(oldBelow, start, end, start, end) === 0) continue;
      const page = below.subarray(start, end);
      const digest = allZero(page) ? Buffer.alloc(DIGEST_SIZE) : await write(Buffer.from(page));
      if (!allZero(page)) pagesWritten++;
      digest.copy(out, i * DIGEST_SIZE);
    }
    levels[level] = out;
  }
  return { root: Buffer.from(levels[shape.depth - 1]!.subarray(0, DIGEST_SIZE)), pagesWritten };
}

export function allZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i += DIGEST_SIZE) if (!isZeroDigest(buf, i)) return false;
  return true;
}
