/**
 * Garbage collection: reclaim blobs no recovery point names, mark and sweep.
 *
 * Mark (gc lock only, backups keep running): walk every manifest's trees; a blob is marked in a per-segment
 * byte map at the position of its newest index entry (the one lookups return). A page already marked is not
 * read again, so the subtrees shared by successive points cost nothing: the mark reads each distinct page once.
 * Sweep (commit lock held: no backup publishes meanwhile): reload the index and the manifest list, mark
 * points published since the mark started, then:
 *   - an entry that is unmarked (no point names it, or a newer entry for the digest exists) is dead;
 *   - a pack with dead entries and a live fraction below `repackBelow` has its live records copied to a new
 *     pack (repack); a pack with no live entries is deleted; packs without dead entries are not touched;
 *   - each segment holding dead or moved entries is rewritten (same seq, gen+1) without them;
 *   - only then are the packs deleted (no published segment names a deleted pack at any moment);
 *   - orphans (packs no segment names, temp files) older than the oldest running backup are deleted;
 *   - the gc generation is bumped: a running backup that reused a blob checks at commit that it survived.
 * Crash at any moment: every published segment names existing packs; leftovers are removed by the next gc.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobReader } from './blobs.js';
import { isZeroDigest } from './codec.js';
import { fsyncDir, isTempName, listDir, removeFile } from './fsutil.js';
import { entryAt, findInSegment, writeSegment, type BlobIndex, type IndexEntry, type Segment } from './index.js';
import { packFileName, parsePackFileName } from './layout.js';
import { compactIndex, replaceSegment } from './compact.js';
import { PackReader, PackWriter } from './pack.js';
import type { Store } from './store.js';
import { diskShape, walkTree } from './walk.js';

export interface GcOptions {
  /** Repack packs whose live fraction is below this (0..1, default 0.5). */
  readonly repackBelow?: number;
  readonly signal?: AbortSignal;
  readonly progress?: (p: { bytesDone: number; bytesTotal: number }) => void;
}

export interface GcResult {
  readonly pointsMarked: number;
  readonly pagesRead: number;
  readonly blobsLive: number;
  readonly blobsDeleted: number;
  readonly bytesFreed: number;
  readonly packsDeleted: number;
  readonly packsRepacked: number;
  readonly orphansDeleted: number;
  readonly segmentsRewritten: number;
  readonly durationMs: number;
}

class Marks {
  readonly index: BlobIndex;
  readonly maps = new Map<Segment, Uint8Array>();
  pagesRead = 0;
  constructor(index: BlobIndex) {
    this.index = index;
    for (const s of index.segments) this.maps.set(s, new Uint8Array(s.count));
  }
  /** Mark the newest entry of `digest`; false when it was marked already (or is not in the index). */
  mark(digest: Uint8Array): boolean {
    for (const seg of this.index.segments) {
      const i = findInSegment(seg, digest);
      if (i < 0) continue;
      const m = this.maps.get(seg)!;
      if (m[i]) return false;
      m[i] = 1;
      return true;
    }
    return false;
  }
}

async function markPoints(store: Store, reader: BlobReader, marks: Marks, done: Set<string>): Promise<void> {
  for (const source of await store.listSources()) {
    for (const id of await store.listPointIds(source)) {
      const key = `${source}/${id}`;
      if (done.has(key)) continue;
      let m;
      try {
        m = await store.readPoint(source, id);
      } catch (err) {
        if ((err as { code?: string }).code === 'SV_ERR_STORE_POINT_NOT_FOUND') continue; // pruned meanwhile
        throw err;
      }
      for (const d of m.disks) {
        await walkTree(reader.readPage, diskShape(m, d), Buffer.from(d.root, 'hex'), {
          page: (digest) => {
            const fresh = marks.mark(digest);
            if (fresh) marks.pagesRead++;
            return fresh;
          },
          leaf: (page) => {
            for (let o = 0; o < page.length; o += 32) if (!isZeroDigest(page, o)) marks.mark(page.subarray(o, o + 32));
          },
        });
      }
      done.add(key);
    }
  }
}

export async function collectGarbage(store: Store, opts: GcOptions = {}): Promise<GcResult> {
  const t0 = Date.now();
  const repackBelow = opts.repackBelow ?? 0.5;
  const gcLock = await store.lockGc();
  try {
    const done = new Set<string>();
    let index = await store.loadIndex();
    let marks = new Marks(index);
    await markPoints(store, new BlobReader(store.packsDir, index), marks, done);
    const commit = await store.lockCommit('gc sweep');
    try {
      const fresh = await store.loadIndex();
      const same = fresh.segments.length === index.segments.length && fresh.segments.every((seg, i) => seg === index.segments[i]);
      if (!same) {
        // Segments were added (or compacted) since: re-mark everything against the current index.
        index = fresh;
        marks = new Marks(index);
        done.clear();
      }
      const reader = new BlobReader(store.packsDir, index);
      await markPoints(store, reader, marks, done);
      reader.close();
      return await sweep(store, index, marks, repackBelow, t0, done.size);
    } finally {
      await commit.release();
    }
  } finally {
    await gcLock.release();
  }
}

async function sweep(store: Store, index: BlobIndex, marks: Marks, repackBelow: number, t0: number, pointsMarked: number): Promise<GcResult> {
  interface PackStat { live: IndexEntry[]; liveBytes: number; dead: number; deadBytes: number }
  const packs = new Map<bigint, PackStat>();
  const dirty = new Set<Segment>();
  let blobsLive = 0;
  let blobsDeleted = 0;
  for (const seg of index.segments) {
    const m = marks.maps.get(seg)!;
    for (let i = 0; i < seg.count; i++) {
      const e = entryAt(seg, i);
      let ps = packs.get(e.packId);
      if (!ps) packs.set(e.packId, (ps = { live: [], liveBytes: 0, dead: 0, deadBytes: 0 }));
      if (m[i]) {
        ps.live.push(e);
        ps.liveBytes += e.storedLength + 48;
        blobsLive++;
      } else {
        ps.dead++;
        ps.deadBytes += e.storedLength + 48;
        blobsDeleted++;
        dirty.add(seg);
      }
    }
  }
  // Decide per pack (only packs with dead entries are looked at).
  const deletePacks: bigint[] = [];
  const repack: bigint[] = [];
  for (const [id, ps] of packs) {
    if (!ps.dead) continue;
    if (!ps.live.length) deletePacks.push(id);
    else {
      const size = await stat(join(store.packsDir, packFileName(id))).then((s) => s.size, () => ps.liveBytes + ps.deadBytes);
      if (ps.liveBytes / size < repackBelow) repack.push(id);
    }
  }
  const moved = new Map<string, IndexEntry>();
  const writer = new PackWriter(store.packsDir);
  if (repack.length) {
    const pr = new PackReader(store.packsDir);
    try {
      for (const id of repack) {
        for (const e of packs.get(id)!.live) {
          const payload = pr.read(e.digest, e);
          const loc = await writer.append(e.digest, e.flag, e.rawLength, Buffer.from(payload));
          moved.set(e.digest.toString('hex'), { ...loc, digest: Buffer.from(e.digest) });
        }
      }
    } finally {
      pr.close();
    }
    await writer.finish();
    await writeSegment(store.indexDir, [...moved.values()], index.nextSeq());
  }
  const repacked = new Set(repack);
  let segmentsRewritten = 0;
  for (const seg of index.segments) {
    const m = marks.maps.get(seg)!;
    let hasMoved = false;
    const keep: IndexEntry[] = [];
    for (let i = 0; i < seg.count; i++) {
      if (!m[i]) continue;
      const e = entryAt(seg, i);
      if (repacked.has(e.packId)) hasMoved = true;
      else keep.push({ ...e, digest: Buffer.from(e.digest) });
    }
    if (!dirty.has(seg) && !hasMoved) continue;
    await replaceSegment(store.indexDir, seg, keep);
    segmentsRewritten++;
  }
  if (segmentsRewritten || moved.size) await fsyncDir(store.indexDir);
  let bytesFreed = 0;
  for (const id of [...deletePacks, ...repack]) {
    const path = join(store.packsDir, packFileName(id));
    bytesFreed += await stat(path).then((s) => s.size, () => 0);
    await removeFile(path);
  }
  if (bytesFreed) bytesFreed -= writer.bytesWritten;
  // Orphans and leftovers older than every running backup (and than this gc).
  const current = await store.loadIndex();
  if (current.segments.length > 16) await compactIndex(current);
  const named = new Set<bigint>();
  for (const seg of (await store.loadIndex()).segments) for (let i = 0; i < seg.count; i++) named.add(entryAt(seg, i).packId);
  const running = await store.listRunning();
  const cutoff = Math.min(t0, ...running.map((r) => r.startMs));
  let orphansDeleted = 0;
  for (const name of await listDir(store.packsDir)) {
    const id = parsePackFileName(name);
    if (id !== undefined && named.has(id)) continue;
    if (id === undefined && !isTempName(name)) continue;
    const path = join(store.packsDir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st || st.mtimeMs >= cutoff) continue;
    bytesFreed += st.size;
    await removeFile(path);
    orphansDeleted++;
  }
  const { superseded } = await (await import('./index.js')).BlobIndex.listSegmentFiles(store.indexDir);
  for (const name of superseded) await removeFile(join(store.indexDir, name));
  for (const name of await listDir(store.indexDir)) if (isTempName(name)) await removeFile(join(store.indexDir, name));
  if (deletePacks.length || repack.length || orphansDeleted) await fsyncDir(store.packsDir);
  // Bad digests that no point names any more are forgotten.
  const bad = await store.readBad();
  if (bad.size) {
    const idx = await store.loadIndex();
    await store.updateBad([], [...bad].filter((hex) => !idx.has(Buffer.from(hex, 'hex'))));
  }
  await store.bumpGcGeneration();
  return {
    pointsMarked, pagesRead: marks.pagesRead, blobsLive, blobsDeleted, bytesFreed: Math.max(0, bytesFreed), packsDeleted: deletePacks.length,
    packsRepacked: repack.length, orphansDeleted, segmentsRewritten, durationMs: Date.now() - t0,
  };
}
