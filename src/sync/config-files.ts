/**
 * A VM's configuration files in a recovery point (issue 14): each file is stored as a page tree exactly like a
 * disk of the file's size (blocks of the point's block size, leaf and inner pages, all in the run's packs), and
 * the manifest's `configuration` record holds the description (src/hypervisor/config.ts) plus each file's root
 * and depth. So the bytes go through the store's backend like every other point datum, gc counts them
 * (refwalk.ts pointRefsOf), verify reads them, and prune drops them with the manifest.
 *
 * Writing: the blocks are the run's own bytes (BackupContext.putOwn: deduplicated within the run, never reused
 * from the store, so a concurrent gc cannot sweep them before the commit). Reading: the tree is read block by
 * block on the calling thread (a few MiB at most) and the file's SHA-256 checked against the description:
 * a mismatch is SV_ERR_STORE_CORRUPT_PAGE-like damage reported as SV_ERR_HYPERVISOR_BAD_CONFIGURATION.
 */
import { createHash } from 'node:crypto';
import { SvError } from '../errors/index.js';
import { checkConfiguration, describeConfiguration, type VmConfiguration } from '../hypervisor/config.js';
import { ZERO_DIGEST } from '../../storage/codec.js';
import type { BlobIndex } from '../../storage/index.js';
import { DIGEST_SIZE } from '../../storage/layout.js';
import type { ConfigRecord, PointManifest } from '../../storage/manifest.js';
import { allZero, buildUpper, treeShape, zeroLevels } from '../../storage/tree.js';
import type { BackendRef } from '../../storage/backend/types.js';
import type { BackupContext } from './context.js';
import { PointDiskReader } from './point-reader.js';

/** Store one file's bytes as a page tree; returns its root (hex) and depth. */
async function storeTree(ctx: BackupContext, data: Uint8Array, blockSize: number, fanout: number): Promise<{ root: string; depth: number }> {
  const shape = treeShape(data.length, blockSize, fanout);
  const levels = zeroLevels(shape);
  const leaf = Buffer.alloc(Math.min(shape.blockCount, fanout) * DIGEST_SIZE);
  for (let l = 0; l < shape.levelCounts[0]!; l++) {
    const first = l * fanout;
    const count = Math.min(fanout, shape.blockCount - first);
    const page = leaf.subarray(0, count * DIGEST_SIZE);
    for (let i = 0; i < count; i++) {
      const at = (first + i) * blockSize;
      const block = Buffer.from(data.buffer, data.byteOffset + at, Math.min(blockSize, data.length - at));
      (await ctx.putOwn(block)).digest.copy(page, i * DIGEST_SIZE);
    }
    const digest = allZero(page) ? ZERO_DIGEST : await ctx.putPage(Buffer.from(page));
    Buffer.from(digest).copy(levels[0]!, l * DIGEST_SIZE);
  }
  const { root } = await buildUpper(shape, levels, zeroLevels(shape), ctx.putPage);
  return { root: root.toString('hex'), depth: shape.depth };
}

/** Store a (checked) configuration in the run's packs: the manifest's record. */
export async function storeConfiguration(ctx: BackupContext, c: VmConfiguration, blockSize: number, fanout: number): Promise<ConfigRecord> {
  const d = describeConfiguration(checkConfiguration(c, 'configuration to store'));
  const files = [];
  for (const [i, f] of c.files.entries()) files.push({ ...d.files[i]!, ...(await storeTree(ctx, f.data, blockSize, fanout)) });
  return { ...d, files };
}

/** The configuration files of point `m` (SV_ERR_SYNC_NO_CONFIGURATION when it has none). */
export async function readConfiguration(store: BackendRef, index: BlobIndex, m: PointManifest, reload?: () => Promise<BlobIndex>): Promise<VmConfiguration> {
  const c = m.configuration;
  if (!c) throw new SvError('SV_ERR_SYNC_NO_CONFIGURATION', `point ${m.source}@${m.id} has no VM configuration (not a VM source, a driver that gives none, or a point taken before configurations were kept)`, { source: m.source, point: m.id });
  const files = [];
  for (const f of c.files) {
    const pdr = new PointDiskReader(store, index, m, { index: 0, name: f.name, format: 'raw', virtualSize: f.size, root: f.root, depth: f.depth }, reload);
    try {
      await pdr.open();
      const out = Buffer.alloc(f.size);
      for (let b = 0; b < pdr.shape.blockCount; b++) {
        const digest = await pdr.blockDigest(b);
        if (digest) (await pdr.readBlob(Buffer.from(digest))).copy(out, b * m.blockSize);
      }
      const sum = createHash('sha256').update(out).digest('hex');
      if (sum !== f.sha256) throw new SvError('SV_ERR_HYPERVISOR_BAD_CONFIGURATION', `point ${m.source}@${m.id}: configuration file ${f.name} reads back with SHA-256 ${sum}, the point recorded ${f.sha256}`, { point: m.id, name: f.name });
      files.push({ name: f.name, data: out });
    } finally {
      pdr.close();
    }
  }
  return checkConfiguration({ format: c.format, version: c.version, simulated: c.simulated, ...(c.note !== undefined ? { note: c.note } : {}), files }, `point ${m.source}@${m.id}`);
}
