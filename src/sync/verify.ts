/**
 * verify(): re-read and re-hash stored blobs (every point, the points of one source, one point, or a random
 * sample percentage of the distinct blocks they name), record the bad ones in the store's bad list (so the
 * next sync rewrites them), and name the points each bad blob affects.
 *
 * Pages are read on this thread while walking (each distinct page once; decoding checks its digest); blocks
 * are checked by worker tasks (storeReadBlobs in verify mode), grouped by pack and offset, ~16 MiB per task.
 * Each bad blob names the pack file and record offset the index gives for it (null when it is not indexed).
 * Points whose manifest is damaged are skipped and listed in `skipped` with their error.
 */
import { poolSize, runTask } from '../pool/index.js';
import { hasCode } from '../errors/index.js';
import { packFileName, RECORD_HEADER_SIZE } from '../../storage/layout.js';
import { BlobReader } from '../../storage/blobs.js';
import type { BlobLocation } from '../../storage/index.js';
import type { PointManifest } from '../../storage/manifest.js';
import { diskShape, walkTree } from '../../storage/walk.js';
import { pointTrees } from '../../storage/manifest.js';
import { openStore } from './open-store.js';
import { describeKey } from '../../storage/backend/keys.js';
import type { CommonOptions } from './types.js';

export interface VerifyOptions extends CommonOptions {
  /** Only this data source (default: all). */
  readonly source?: string;
  /** Only this point of `source` (id, prefix or "latest"). */
  readonly point?: string;
  /** Check a random sample of this percentage of the distinct blocks (default 100). */
  readonly samplePercent?: number;
}

export interface BadBlob {
  readonly digest: string;
  readonly kind: 'block' | 'page';
  readonly code: string;
  readonly message: string;
  /** The pack file holding the blob (per the index), or null when the index has no entry for it. */
  readonly pack: string | null;
  /** Offset of the blob's record (its 48-byte header) in `pack`, or null. */
  readonly offset: number | null;
  /** The points (`source@id`) whose disks name this blob. */
  readonly points: string[];
}

export interface SkippedPoint {
  /** `source@id` */
  readonly point: string;
  readonly code: string;
  readonly message: string;
}

export interface VerifyResult {
  readonly points: number;
  readonly pagesChecked: number;
  readonly blocksChecked: number;
  readonly bytesChecked: number;
  readonly bad: BadBlob[];
  /** Points not verified because their manifest is damaged. */
  readonly skipped: SkippedPoint[];
  readonly durationMs: number;
}

const TASK_BYTES = 16 * 1024 * 1024;

export async function verify(opts: VerifyOptions): Promise<VerifyResult> {
  const t0 = Date.now();
  const store = await openStore(opts.store);
  const points: PointManifest[] = [];
  const skipped: SkippedPoint[] = [];
  if (opts.point !== undefined && opts.source) points.push(await store.resolvePoint(opts.source, opts.point));
  else {
    for (const s of opts.source ? [opts.source] : await store.listSources()) {
      const scan = await store.scanPoints(s);
      points.push(...scan.points);
      for (const d of scan.damaged) skipped.push({ point: `${d.source}@${d.id}`, code: d.error.code, message: d.error.message });
    }
  }
  const index = await store.loadIndex();
  const reader = new BlobReader(store.ref, index);
  const pagesSeen = new Set<string>();
  const blocks = new Map<string, Buffer>();
  const bad = new Map<string, { kind: 'block' | 'page'; code: string; message: string }>();
  for (const m of points) {
    for (const d of pointTrees(m)) {
      await walkTree(reader.readPage, diskShape(m, d), Buffer.from(d.root, 'hex'), {
        page: (digest) => {
          const hex = digest.toString('hex');
          if (pagesSeen.has(hex)) return false;
          pagesSeen.add(hex);
          return true;
        },
        leaf: (page) => {
          for (let o = 0; o < page.length; o += 32) {
            const dg = page.subarray(o, o + 32);
            if (dg.every((b) => b === 0)) continue;
            const hex = dg.toString('hex');
            if (!blocks.has(hex)) blocks.set(hex, dg);
          }
        },
        pageError: (digest, _level, err) => {
          const e = err as { code?: string; message?: string };
          bad.set(digest.toString('hex'), { kind: 'page', code: e.code ?? 'SV_ERR_CORE_INTERNAL', message: e.message ?? String(err) });
        },
      });
    }
  }
  // Choose and locate the blocks to check.
  const pct = Math.min(100, Math.max(0, opts.samplePercent ?? 100));
  const chosen: Array<{ hex: string; digest: Buffer; loc: BlobLocation }> = [];
  for (const [hex, digest] of blocks) {
    if (pct < 100 && Math.random() * 100 >= pct) continue;
    const loc = index.lookup(digest);
    if (!loc) bad.set(hex, { kind: 'block', code: 'SV_ERR_STORE_MISSING_BLOB', message: `block ${hex} is not in the store index` });
    else chosen.push({ hex, digest, loc });
  }
  chosen.sort((a, b) => (a.loc.packId < b.loc.packId ? -1 : a.loc.packId > b.loc.packId ? 1 : a.loc.offset - b.loc.offset));
  const bytesTotal = chosen.reduce((n, c) => n + c.loc.storedLength, 0);
  let bytesChecked = 0;
  const batches: (typeof chosen)[] = [];
  let cur: typeof chosen = [];
  let curBytes = 0;
  for (const c of chosen) {
    cur.push(c);
    curBytes += c.loc.storedLength;
    if (curBytes >= TASK_BYTES) {
      batches.push(cur);
      cur = [];
      curBytes = 0;
    }
  }
  if (cur.length) batches.push(cur);
  const suspects: typeof chosen = [];
  const runBatch = async (batch: typeof chosen, recheck = false): Promise<void> => {
    const n = batch.length;
    const r = await runTask('storeReadBlobs', {
      store: store.ref, mode: 'verify', digests: Buffer.concat(batch.map((c) => c.digest)),
      packIds: BigUint64Array.from(batch.map((c) => c.loc.packId)), offsets: Uint32Array.from(batch.map((c) => c.loc.offset)),
      storedLengths: Uint32Array.from(batch.map((c) => c.loc.storedLength)), rawLengths: Uint32Array.from(batch.map((c) => c.loc.rawLength)),
      flags: Uint8Array.from(batch.map((c) => c.loc.flag)), outOffsets: new Uint32Array(n), outLength: 0,
    }, { signal: opts.signal });
    for (const f of r.failures) {
      // A pack that vanished may have been repacked by a concurrent gc: looked up again once below.
      if (!recheck && hasCode(f.error, 'SV_ERR_STORE_CORRUPT_PACK')) suspects.push(batch[f.index]!);
      else bad.set(batch[f.index]!.hex, { kind: 'block', code: f.error.code, message: f.error.message });
    }
    bytesChecked += batch.reduce((s, c) => s + c.loc.storedLength, 0);
    opts.progress?.({ bytesDone: bytesChecked, bytesTotal });
  };
  const limit = poolSize() * 2;
  for (let i = 0; i < batches.length; i += limit) await Promise.all(batches.slice(i, i + limit).map((b) => runBatch(b)));
  if (suspects.length) {
    const fresh = await store.loadIndex();
    const again: typeof chosen = [];
    for (const c of suspects) {
      const loc = fresh.lookup(c.digest);
      if (!loc) bad.set(c.hex, { kind: 'block', code: 'SV_ERR_STORE_MISSING_BLOB', message: `block ${c.hex} is not in the store index` });
      else again.push({ ...c, loc });
    }
    if (again.length) await runBatch(again, true);
  }
  // Which points each bad blob affects (memoised per page: shared subtrees are read once).
  const result: BadBlob[] = [];
  if (bad.size) {
    const affected = new Map<string, string[]>([...bad.keys()].map((k) => [k, []]));
    for (const m of points) {
      const hit = new Set<string>();
      for (const d of pointTrees(m)) {
        await walkTree(reader.readPage, diskShape(m, d), Buffer.from(d.root, 'hex'), {
          page: (digest) => {
            const hex = digest.toString('hex');
            if (bad.has(hex)) hit.add(hex);
            return !bad.has(hex);
          },
          leaf: (page) => {
            for (let o = 0; o < page.length; o += 32) {
              const hex = page.toString('hex', o, o + 32);
              if (bad.has(hex)) hit.add(hex);
            }
          },
          pageError: () => undefined,
        });
      }
      for (const hex of hit) affected.get(hex)!.push(`${m.source}@${m.id}`);
    }
    const where = await store.loadIndex();
    for (const [hex, b] of bad) {
      const loc = where.lookup(Buffer.from(hex, 'hex'));
      const pack = loc ? describeKey(store.backend, `packs/${packFileName(loc.packId)}`) : null;
      result.push({ digest: hex, ...b, pack, offset: loc ? loc.offset - RECORD_HEADER_SIZE : null, points: affected.get(hex)! });
    }
    const lock = await store.lockCommit('verify');
    try {
      await store.updateBad([...bad.keys()], []);
    } finally {
      await lock.release();
    }
  }
  reader.close();
  return { points: points.length, pagesChecked: pagesSeen.size, blocksChecked: chosen.length, bytesChecked, bad: result, skipped, durationMs: Date.now() - t0 };
}
