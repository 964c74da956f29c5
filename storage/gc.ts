/**
 * Garbage collection: reclaim blobs no recovery point names. Reference-counted mark, then sweep.
 *
 * Mark (refs.ts, refwalk.ts): gc keeps a reference table (`gc-refs.bin`: per blob, how many pages name it) for
 * the point set it saw last. A run loads it, counts the points published since (reading only their new pages:
 * shared subtrees are not read) and uncounts the points deleted since (reading only the pages that die), so the
 * mark costs what changed, not the store's size. No table (first run, `full`), a corrupt one, or one that does
 * not match (a count below zero, a dead page that cannot be read) is rebuilt from every point: a full mark.
 *   - phase 1 (gc lock only, backups keep running): bring the table up to date;
 *   - phase 2 (commit lock held: no backup publishes meanwhile): count the points published or pruned during
 *     phase 1, write the table (temp + fsync + rename), then mark in a per-segment byte map the newest index
 *     entry of every referenced digest (the entry lookups return) and sweep.
 * Sweep:
 *   - an entry that is unmarked (no point names it, or a newer entry for the digest exists) is dead;
 *   - a pack with dead entries and a live fraction below `repackBelow` has its live records copied to a new
 *     pack (repack); a pack with no live entries is deleted; packs without dead entries are not touched;
 *   - each segment holding dead or moved entries is rewritten (same seq, gen+1) without them;
 *   - only then are the packs deleted (no published segment names a deleted pack at any moment);
 *   - orphans are deleted (see "Orphans" below);
 *   - the gc generation is bumped: a running backup that reused a blob checks at commit that it survived.
 * Orphans (a rule that holds on object storage, where there is no file modification time to trust): a pack no
 * index segment names, or a temporary an interrupted put left (Backend.cleanup), is deleted when it was created
 * before the cutoff = min(this gc's start, the start of the oldest running backup) - grace. A backup registers
 * itself as running (running/<id>.json in the store's local folder, Store.registerRunning) before it writes its
 * first pack, and its packs are only named by a segment at its commit, so every unnamed pack of a running
 * backup is created after its start, hence after the cutoff, and is kept. "Created" is the object's own
 * creation time (Backend.stat/list createdMs: the file's mtime on a folder store, LastModified on S3), compared
 * in the store's own clock: on a folder store the times are this machine's; on an object store gc first measures
 * a lower bound of the store's clock offset (clock-offset.ts: one small object written and read back) and
 * shifts the cutoff by it, less ORPHAN_GRACE_S3_MS (5 s) for a clock step meanwhile. So a killed backup's packs
 * and incomplete uploads go at the first gc after its death (seconds later, not the 15 minutes of a fixed skew
 * allowance). A crashed backup's marker names a dead process and
 * is dropped (listRunning), so its packs become orphans at the next gc.
 * Object Lock: a pack or segment whose delete S3 refuses (retention) stays and is counted in `lockedSkipped`
 * (locked.ts, compact.ts); a later gc deletes it once its retention has passed.
 * Damage: gc refuses to run (SV_ERR_STORE_NEEDS_REPAIR) while a quarantined index segment waits for `repair`
 * (quarantine.ts): the packs only that segment named would look like orphans. A damaged manifest of a point the
 * table already counts keeps its references (its blocks stay until the point is deleted explicitly); one the
 * table does not count stops the mark with its error. Non-regular files in packs/ are never touched.
 * Crash at any moment: every published segment names existing packs; the table on disk never counts a blob
 * that is gone (it is written before the sweep, without the dead); leftovers are removed by the next gc.
 */
import { hasCode, isStoreDamage, SvError } from '../src/errors/index.js';
import { describeKey } from './backend/keys.js';
import { BlobReader } from './blobs.js';
import { BlobIndex, entryAt, writeSegment, type IndexEntry, type Segment } from './index.js';
import { INDEX_ENTRY_SIZE, packFileName, parsePackFileName } from './layout.js';
import { compactIndex, replaceSegment } from './compact.js';
import { storeClockLowerBound, ORPHAN_GRACE_S3_MS } from './clock-offset.js';
import { deleteUnlessLocked } from './locked.js';
import { BackendPackReader } from './pack-backend.js';
import { localPacksDir, PackReader } from './pack.js';
import { needsRepair } from './quarantine.js';
import { loadRefState, saveRefState } from './refs-file.js';
import { emptyRefState, type RefState, type RefTable } from './refs.js';
import { newRefSyncStats, syncRefs, type RefSyncStats } from './refwalk.js';
import type { Store } from './store.js';

export { ORPHAN_GRACE_S3_MS } from './clock-offset.js';

export interface GcOptions {
  /** Repack packs whose live fraction is below this (0..1, default 0.5). */
  readonly repackBelow?: number;
  /** Rebuild the reference table from every point instead of updating it (a full mark). */
  readonly full?: boolean;
  readonly signal?: AbortSignal;
  readonly progress?: (p: { bytesDone: number; bytesTotal: number }) => void;
  /** Called between the mark without locks and the commit-locked phase (tests publish and prune points there). */
  readonly afterMark?: () => Promise<void>;
}

export interface GcResult {
  /** 'incremental': the reference table was updated; 'full': rebuilt from every point (see `fullReason`). */
  readonly mark: 'incremental' | 'full';
  /** Why the mark was full: 'requested', 'no table', 'corrupt table', 'other store', 'table mismatch'; null when incremental. */
  readonly fullReason: string | null;
  /** Points the store holds (all counted in the table). */
  readonly pointsMarked: number;
  /** Points counted / uncounted by this run. */
  readonly pointsAdded: number;
  readonly pointsRemoved: number;
  /** Index pages read (new pages of added points, dead pages of removed ones; every distinct page when full). */
  readonly pagesRead: number;
  /** Blobs points name that no index segment holds (orphan packs are then kept; `repair` finds them). */
  readonly blobsUnindexed: number;
  readonly blobsLive: number;
  readonly blobsDeleted: number;
  readonly bytesFreed: number;
  readonly packsDeleted: number;
  readonly packsRepacked: number;
  readonly orphansDeleted: number;
  readonly segmentsRewritten: number;
  /** Objects (packs, index segments) gc would have deleted that Object Lock retention keeps (locked.ts). */
  readonly lockedSkipped: number;
  readonly durationMs: number;
}

interface MarkState {
  state: RefState;
  stats: RefSyncStats;
  fullReason: string | null;
}

/** Update `m.state` to the store's points; on a mismatch, start over from an empty table (a full mark). */
async function bringUpToDate(store: Store, reader: BlobReader, m: MarkState, signal?: AbortSignal): Promise<void> {
  try {
    await syncRefs(store, reader.readPage, m.state, m.stats, signal);
  } catch (err) {
    // Only a table that disagrees with the points is rebuilt; a damaged point or a cancel stops gc as it is.
    if (m.fullReason !== null || !(isStoreDamage(err) || hasCode(err, 'SV_ERR_STORE_CORRUPT_REFS'))) throw err;
    m.state = emptyRefState(store.id);
    m.stats = newRefSyncStats();
    m.fullReason = 'table mismatch';
    await syncRefs(store, reader.readPage, m.state, m.stats, signal);
  }
}


/**
 * Per segment (newest first), a byte per entry: 1 for the newest entry of each referenced digest; and how many
 * referenced digests no entry holds (a lost or quarantined segment: their packs look like orphans).
 */
function markFromTable(index: BlobIndex, table: RefTable): { maps: Map<Segment, Uint8Array>; unindexed: number } {
  const claimed = new Uint8Array(table.capacity);
  const maps = new Map<Segment, Uint8Array>();
  for (const seg of index.segments) {
    const m = new Uint8Array(seg.count);
    for (let i = 0; i < seg.count; i++) {
      const s = table.find(seg.entries, i * INDEX_ENTRY_SIZE);
      if (s < 0 || claimed[s] || !table.liveAt(s)) continue;
      claimed[s] = 1;
      m[i] = 1;
    }
    maps.set(seg, m);
  }
  let unindexed = 0;
  for (let s = 0; s < table.capacity; s++) if (!claimed[s] && table.liveAt(s)) unindexed++;
  return { maps, unindexed };
}

async function refuseWhileRepairNeeded(store: Store): Promise<void> {
  const pending = await needsRepair(store.dir);
  if (!pending) return;
  throw new SvError('SV_ERR_STORE_NEEDS_REPAIR', `gc of ${store.dir}: index segment(s) ${pending.files.join(', ') || '(see the quarantine folder)'} were quarantined on ${pending.since || 'an unknown date'} and the index not yet rebuilt; gc could delete packs only they named. Run \`shadowvault repair\` first`, { files: pending.files });
}

export async function collectGarbage(store: Store, opts: GcOptions = {}): Promise<GcResult> {
  const t0 = Date.now();
  const repackBelow = opts.repackBelow ?? 0.5;
  const gcLock = await store.lockGc();
  try {
    const loaded = opts.full ? { state: emptyRefState(store.id), fullReason: 'requested' } : await loadRefState(store);
    const m: MarkState = { state: loaded.state, stats: newRefSyncStats(), fullReason: loaded.fullReason };
    const early = new BlobReader(store.ref, await store.loadIndex(), () => store.loadIndex());
    await refuseWhileRepairNeeded(store);
    try {
      await bringUpToDate(store, early, m, opts.signal);
    } finally {
      early.close();
    }
    await opts.afterMark?.();
    const commit = await store.lockCommit('gc sweep');
    try {
      const index = await store.loadIndex();
      await refuseWhileRepairNeeded(store);
      const reader = new BlobReader(store.ref, index, () => store.loadIndex());
      try {
        await bringUpToDate(store, reader, m, opts.signal); // points published or pruned during phase 1
      } finally {
        reader.close();
      }
      await saveRefState(store, m.state);
      const { maps, unindexed } = markFromTable(index, m.state.table);
      if (unindexed) store.warn(`gc: ${unindexed} blob(s) that points name are in no index segment (a segment was lost?); packs no segment names are kept: run \`shadowvault repair\``);
      const swept = await sweep(store, index, maps, repackBelow, t0, unindexed > 0);
      return {
        mark: m.fullReason === null ? 'incremental' : 'full', fullReason: m.fullReason, pointsMarked: m.state.points.size,
        pointsAdded: m.stats.pointsAdded, pointsRemoved: m.stats.pointsRemoved, pagesRead: m.stats.pagesRead, blobsUnindexed: unindexed, ...swept, durationMs: Date.now() - t0,
      };
    } finally {
      await commit.release();
    }
  } finally {
    await gcLock.release();
  }
}

type SweepResult = Omit<GcResult, 'mark' | 'fullReason' | 'pointsMarked' | 'pointsAdded' | 'pointsRemoved' | 'pagesRead' | 'blobsUnindexed' | 'durationMs'>;

async function sweep(store: Store, index: BlobIndex, maps: Map<Segment, Uint8Array>, repackBelow: number, t0: number, keepOrphans: boolean): Promise<SweepResult> {
  interface PackStat { live: IndexEntry[]; liveCount: number; liveBytes: number; dead: number; deadBytes: number }
  const packs = new Map<bigint, PackStat>();
  const dirty = new Set<Segment>();
  let blobsLive = 0;
  let blobsDeleted = 0;
  // One pass over the flat segment buffers (no objects per entry): per pack, what is live and what is dead.
  for (const seg of index.segments) {
    const m = maps.get(seg)!;
    for (let i = 0, o = 0; i < seg.count; i++, o += INDEX_ENTRY_SIZE) {
      const packId = seg.entries.readBigUInt64LE(o + 32);
      const bytes = seg.entries.readUInt32LE(o + 44) + 48;
      let ps = packs.get(packId);
      if (!ps) packs.set(packId, (ps = { live: [], liveCount: 0, liveBytes: 0, dead: 0, deadBytes: 0 }));
      if (m[i]) {
        ps.liveCount++;
        ps.liveBytes += bytes;
        blobsLive++;
      } else {
        ps.dead++;
        ps.deadBytes += bytes;
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
    if (!ps.liveCount) deletePacks.push(id);
    else {
      const size = await store.backend.stat(`packs/${packFileName(id)}`).then((s) => s.size, () => ps.liveBytes + ps.deadBytes);
      if (ps.liveBytes / size < repackBelow) repack.push(id);
    }
  }
  const repacked = new Set(repack);
  if (repack.length) {
    // Second pass, only when repacking: the live entries of the packs to repack (newest entry of each digest).
    for (const seg of index.segments) {
      const m = maps.get(seg)!;
      for (let i = 0; i < seg.count; i++) {
        if (m[i] && repacked.has(seg.entries.readBigUInt64LE(i * INDEX_ENTRY_SIZE + 32))) packs.get(seg.entries.readBigUInt64LE(i * INDEX_ENTRY_SIZE + 32))!.live.push(entryAt(seg, i));
      }
    }
  }
  let lockedSkipped = 0;
  const onLocked = (): void => { lockedSkipped++; };
  const moved = new Map<string, IndexEntry>();
  const writer = store.packWriter();
  if (repack.length) {
    const local = localPacksDir(store.ref);
    const pr = local !== undefined ? new PackReader(local) : new BackendPackReader(store.ref);
    try {
      for (const id of repack) {
        for (const e of packs.get(id)!.live) {
          const payload = await pr.read(e.digest, e);
          const loc = await writer.append(e.digest, e.flag, e.rawLength, Buffer.from(payload));
          moved.set(e.digest.toString('hex'), { ...loc, digest: Buffer.from(e.digest) });
        }
      }
    } finally {
      pr.close();
    }
    await writer.finish();
    await writeSegment(store.backend, [...moved.values()], index.nextSeq());
  }
  let segmentsRewritten = 0;
  for (const seg of index.segments) {
    const m = maps.get(seg)!;
    let hasMoved = false;
    if (repacked.size) for (let i = 0; i < seg.count && !hasMoved; i++) hasMoved = m[i] === 1 && repacked.has(seg.entries.readBigUInt64LE(i * INDEX_ENTRY_SIZE + 32));
    if (!dirty.has(seg) && !hasMoved) continue;
    const keep: IndexEntry[] = [];
    for (let i = 0; i < seg.count; i++) {
      if (!m[i]) continue;
      const e = entryAt(seg, i);
      if (!repacked.has(e.packId)) keep.push({ ...e, digest: Buffer.from(e.digest) });
    }
    await replaceSegment(store.backend, seg, keep, onLocked);
    segmentsRewritten++;
  }
  // Segment deletes are durable (Backend.delete) before any pack they named is deleted.
  let bytesFreed = 0;
  for (const id of [...deletePacks, ...repack]) {
    const key = `packs/${packFileName(id)}`;
    const size = await store.backend.stat(key).then((s) => s.size, () => 0);
    if (await deleteUnlessLocked(store.backend, key, onLocked)) bytesFreed += size;
  }
  if (bytesFreed) bytesFreed -= writer.bytesWritten;
  const current = await store.loadIndex();
  if (current.segments.length > 16) await compactIndex(store.backend, current, undefined, onLocked);
  const named = new Set<bigint>();
  for (const seg of (await store.loadIndex()).segments) for (let i = 0; i < seg.count; i++) named.add(seg.entries.readBigUInt64LE(i * INDEX_ENTRY_SIZE + 32));
  const running = await store.listRunning();
  // In the store's clock: a folder store's times are this machine's; an object store's are measured against it.
  const shift = store.ref.kind === 'fs' ? 0 : (await storeClockLowerBound(store.backend)) - ORPHAN_GRACE_S3_MS;
  const cutoff = Math.min(t0, ...running.map((r) => r.startMs)) + shift;
  let orphansDeleted = 0;
  for await (const o of store.backend.list('packs/')) {
    const id = parsePackFileName(o.key.slice('packs/'.length));
    if (id === undefined || named.has(id) || keepOrphans || o.createdMs >= cutoff) continue;
    try {
      await store.backend.stat(o.key); // a FIFO, folder or link planted under a pack's name is never touched
    } catch (err) {
      if (hasCode(err, 'SV_ERR_STORE_FOREIGN_FILE')) store.warn(`${describeKey(store.backend, o.key)} is not a regular file; gc leaves it alone (move it out of the store)`);
      else if (!hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw err;
      continue;
    }
    if (!(await deleteUnlessLocked(store.backend, o.key, onLocked))) continue;
    bytesFreed += o.size;
    orphansDeleted++;
  }
  orphansDeleted += await store.backend.cleanup(Date.now() - cutoff); // ages: the cutoff is in the store clock
  const { superseded } = await BlobIndex.listSegmentFiles(store.backend);
  for (const name of superseded) await deleteUnlessLocked(store.backend, `index/${name}`, onLocked);
  // Bad digests that no point names any more are forgotten.
  const bad = await store.readBad();
  if (bad.size) {
    const idx = await store.loadIndex();
    await store.updateBad([], [...bad].filter((hex) => !idx.has(Buffer.from(hex, 'hex'))));
  }
  await store.bumpGcGeneration();
  return {
    blobsLive, blobsDeleted, bytesFreed: Math.max(0, bytesFreed), packsDeleted: deletePacks.length, packsRepacked: repack.length, orphansDeleted, segmentsRewritten, lockedSkipped,
  };
}
