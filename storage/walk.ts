/**
 * Walking the page trees of recovery points (gc's mark, verify). `visit(level, i, digest)` returns false to
 * skip a subtree (gc: already marked; verify: already seen), so pages shared between points are read once.
 */
import { isZeroDigest } from './codec.js';
import { DIGEST_SIZE } from './layout.js';
import type { DiskRecord, PointManifest } from './manifest.js';
import { childCount, readPage, treeShape, type PageReader, type TreeShape } from './tree.js';

export interface TreeVisitor {
  /** A non-zero page digest is about to be read; return false to skip it and its subtree. */
  page(digest: Buffer, level: number): boolean;
  /** The digests of a leaf page (block digests; zero digests included). */
  leaf(page: Buffer): void;
  /** Reading/decoding a page failed: report and skip its subtree (default: rethrow). */
  pageError?(digest: Buffer, level: number, err: unknown): void;
}

export async function walkTree(read: PageReader, shape: TreeShape, root: Buffer, v: TreeVisitor): Promise<void> {
  const rec = async (level: number, i: number, digest: Buffer): Promise<void> => {
    if (isZeroDigest(digest) || !v.page(digest, level)) return;
    let page: Buffer;
    try {
      page = await readPage(read, shape, level, i, digest);
    } catch (err) {
      if (!v.pageError) throw err;
      v.pageError(digest, level, err);
      return;
    }
    if (level === 0) {
      v.leaf(page);
      return;
    }
    for (let k = 0; k < childCount(shape, level, i); k++) {
      if (!isZeroDigest(page, k * DIGEST_SIZE)) await rec(level - 1, i * shape.fanout + k, page.subarray(k * DIGEST_SIZE, (k + 1) * DIGEST_SIZE));
    }
  };
  await rec(shape.depth - 1, 0, root);
}

export function diskShape(m: PointManifest, d: Pick<DiskRecord, 'virtualSize'>): TreeShape {
  return treeShape(d.virtualSize, m.blockSize, m.fanout);
}
