/**
 * repair: rebuild the blob index from the packs' own record headers (pack-scan.ts), quarantine what cannot be
 * read, and report per recovery point what is intact, what was recovered and what is lost (repair-report.ts).
 *
 * Steps (under the gc lock: no gc, so no pack is deleted; packs are immutable, so they are scanned while backups
 * run; then, for steps 1-4, the commit lock as well: no backup commit, no bad-list update meanwhile):
 *   0. scan the packs (as in 2) under the gc lock only: the long part, backups keep committing;
 *   1. load the index as it is (damaged or foreign segments are quarantined: quarantine.ts);
 *   2. scan the packs that appeared since step 0; a pack is scanned when it is older than the oldest running
 *      backup (a running backup's packs are still being written:
 *      they are left alone, and the entries naming them are carried over as they are); decode every record and
 *      check its digest; a file in packs/ that is not a regular file, and a pack with no readable record, is
 *      quarantined; a pack with some damaged ranges keeps its good records (it is the only copy of them);
 *   3. the new index is every good record (for a digest held by several, the location the old index gave when
 *      that record is good) plus the carried-over entries; it is written as one new segment (temp + fsync +
 *      rename, the highest seq, so it wins over every old one), then the old segments are removed;
 *   4. digests on the bad list that now have a good record are forgotten; needs-repair.json is removed.
 * A crash at any step leaves a readable store: before step 3's rename nothing changed but quarantine moves; after
 * it the new segment answers every lookup it can, and old segments left over name only existing packs.
 * `dryRun`: nothing is written or moved; the report says what a repair would do.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { SvError, toWire, type WireError } from '../src/errors/index.js';
import { decodeBlob } from './codec.js';
import { isTempName, listDir, readStoreFile } from './fsutil.js';
import { BlobIndex, encodeSegment, entryAt, parseSegment, writeSegment, type IndexEntry, type Segment } from './index.js';
import { packFileName, parsePackFileName, RECORD_HEADER_SIZE, segmentFileName } from './layout.js';
import { scanPack, type DamagedRange } from './pack-scan.js';
import { clearNeedsRepair, listQuarantine, quarantineFile } from './quarantine.js';
import { reportPoints, type PointRepair } from './repair-report.js';
import type { Store } from './store.js';

export interface RepairOptions {
  readonly dryRun?: boolean;
  readonly signal?: AbortSignal;
  readonly progress?: (p: { bytesDone: number; bytesTotal: number }) => void;
}

export interface QuarantinedFile {
  readonly path: string;
  /** Its name in `<store>/quarantine/` (null in a dry run). */
  readonly quarantinedAs: string | null;
  readonly code: string;
  readonly reason: string;
}

export interface RepairResult {
  readonly dryRun: boolean;
  readonly packsScanned: number;
  /** Packs younger than the oldest running backup: not scanned, their index entries kept. */
  readonly packsSkipped: number;
  readonly recordsGood: number;
  readonly recordsBad: number;
  /** Index entries before (readable segments) and after. */
  readonly entriesBefore: number;
  readonly entriesAfter: number;
  /** Digests the old index lacked (or pointed at a bad record) that a good record now provides. */
  readonly entriesRecovered: number;
  /** Old entries dropped: their record is damaged and no good copy exists. */
  readonly entriesDropped: number;
  readonly damagedPacks: Array<{ pack: string; header: string | null; ranges: DamagedRange[]; badRecords: Array<{ offset: number; error: WireError }> }>;
  readonly quarantined: QuarantinedFile[];
  readonly segmentsRemoved: number;
  readonly points: PointRepair[];
  readonly durationMs: number;
}

interface Good { entry: IndexEntry; pack: bigint }

export async function repairStore(store: Store, opts: RepairOptions = {}): Promise<RepairResult> {
  if (store.ref.kind !== 'fs') {
    // Repair walks and quarantines the pack and segment files of a folder; on object storage it is not built yet.
    throw new SvError('SV_ERR_BACKEND_UNAVAILABLE', `repair of ${store.backend.location}: repairing a store on object storage is not implemented yet (verify finds bad blocks and the next backup rewrites them; prune --point deletes a damaged point)`, { location: store.backend.location });
  }
  const t0 = Date.now();
  const dryRun = opts.dryRun === true;
  const quarantined: QuarantinedFile[] = [];
  const gcLock = await store.lockGc();
  try {
    const scan: ScanOutcome = { good: new Map(), skipped: new Set(), scanned: 0, recordsGood: 0, recordsBad: 0, damagedPacks: [] };
    const seen = new Set<string>();
    await scanPacks(store, dryRun, quarantined, opts, scan, seen);
    const commit = await store.lockCommit('repair');
    try {
      const old = await loadOld(store, dryRun, quarantined);
      await scanPacks(store, dryRun, quarantined, opts, scan, seen); // packs of backups committed meanwhile
      // The new index: good records, preferring the old index's location; plus entries of packs not scanned.
      const chosen = new Map<string, IndexEntry>();
      for (const [hex, goods] of scan.good) {
        const was = old.lookup(Buffer.from(hex, 'hex'));
        const same = was && goods.find((g) => g.pack === was.packId && g.entry.offset === was.offset);
        chosen.set(hex, (same ?? goods[0]!).entry);
      }
      let recovered = 0;
      let dropped = 0;
      for (const seg of old.segments) {
        for (let i = 0; i < seg.count; i++) {
          const e = entryAt(seg, i);
          const hex = e.digest.toString('hex');
          if (scan.skipped.has(e.packId)) {
            if (!chosen.has(hex)) chosen.set(hex, { ...e, digest: Buffer.from(e.digest) });
          } else if (!scan.good.has(hex)) dropped++;
        }
      }
      for (const [hex, goods] of scan.good) {
        const was = old.lookup(Buffer.from(hex, 'hex'));
        if (!was || !goods.some((g) => g.pack === was.packId && g.entry.offset === was.offset)) recovered++;
      }
      const entries = [...chosen.values()];
      const seq = old.nextSeq();
      const fresh = new BlobIndex(store.indexDir, [memSegment(entries, seq)]);
      const segmentsRemoved = dryRun ? old.segments.length : await publish(store, entries, seq);
      if (!dryRun) {
        const bad = await store.readBad();
        await store.updateBad([], [...bad].filter((hex) => scan.good.has(hex)));
        await clearNeedsRepair(store.dir);
      }
      const points = await reportPoints(store, old, fresh, store.ref);
      return {
        dryRun, packsScanned: scan.scanned, packsSkipped: scan.skipped.size, recordsGood: scan.recordsGood, recordsBad: scan.recordsBad,
        entriesBefore: old.entryCount, entriesAfter: entries.length, entriesRecovered: recovered, entriesDropped: dropped,
        damagedPacks: scan.damagedPacks, quarantined, segmentsRemoved, points, durationMs: Date.now() - t0,
      };
    } finally {
      await commit.release();
    }
  } finally {
    await gcLock.release();
  }
}

function memSegment(entries: readonly IndexEntry[], seq: bigint): Segment {
  const name = segmentFileName(seq, 0);
  return parseSegment(encodeSegment(entries, seq), name, name, seq, 0);
}

/** The index as it is; damaged segments are quarantined (dry run: only reported). */
async function loadOld(store: Store, dryRun: boolean, out: QuarantinedFile[]): Promise<BlobIndex> {
  if (!dryRun) {
    const before = new Set((await listQuarantine(store.dir)).map((q) => q.name));
    const index = await store.loadIndex();
    for (const q of await listQuarantine(store.dir)) if (!before.has(q.name)) out.push({ path: q.from, quarantinedAs: q.name, code: q.code, reason: q.reason });
    return index;
  }
  return BlobIndex.load(store.backend, [], async (path, _name, err) => {
    out.push({ path, quarantinedAs: null, code: err.code, reason: err.message });
    return false;
  });
}

interface ScanOutcome {
  good: Map<string, Good[]>;
  skipped: Set<bigint>;
  scanned: number;
  recordsGood: number;
  recordsBad: number;
  damagedPacks: RepairResult['damagedPacks'];
}

/** Scan the packs not in `seen` (adding them) into `out`. */
async function scanPacks(store: Store, dryRun: boolean, quarantined: QuarantinedFile[], opts: RepairOptions, out: ScanOutcome, seen: Set<string>): Promise<void> {
  const running = await store.listRunning();
  const cutoff = Math.min(Date.now(), ...running.map((r) => r.startMs));
  const names = (await listDir(store.packsDir)).filter((n) => !isTempName(n) && !seen.has(n)).sort();
  for (const n of names) seen.add(n);
  const sizes = new Map<string, number>();
  for (const name of names) sizes.set(name, await lstat(join(store.packsDir, name)).then((s) => (s.isFile() ? s.size : 0), () => 0));
  const total = [...sizes.values()].reduce((a, b) => a + b, 0);
  let done = 0;
  const aside = async (path: string, code: string, reason: string): Promise<void> => {
    const moved = dryRun ? undefined : await quarantineFile(store.dir, path, 'packs', reason, code);
    quarantined.push({ path, quarantinedAs: moved?.name ?? null, code, reason });
    store.warn(`${path}: ${reason}; ${dryRun ? 'repair would quarantine it' : `quarantined as ${moved?.name ?? '(gone)'}`}`);
  };
  for (const name of names) {
    if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'repair cancelled', {});
    const path = join(store.packsDir, name);
    const id = parsePackFileName(name);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    if (!st.isFile()) {
      await aside(path, 'SV_ERR_STORE_FOREIGN_FILE', 'not a regular file');
      continue;
    }
    if (id === undefined) {
      store.warn(`${path} is not named like a pack (<16 hex>.pack); ignored`);
      continue;
    }
    if (st.mtimeMs >= cutoff) {
      out.skipped.add(id);
      continue;
    }
    let buf: Buffer;
    try {
      buf = await readStoreFile(path);
    } catch (err) {
      await aside(path, toWire(err).code, toWire(err).message);
      continue;
    }
    out.scanned++;
    const scan = scanPack(buf);
    const badRecords: Array<{ offset: number; error: WireError }> = [];
    let good = 0;
    for (const r of scan.records) {
      try {
        decodeBlob(r.payload, r.flag, r.digest, r.rawLength);
      } catch (err) {
        badRecords.push({ offset: r.offset - RECORD_HEADER_SIZE, error: toWire(err) });
        continue;
      }
      good++;
      const hex = r.digest.toString('hex');
      const entry: IndexEntry = { digest: Buffer.from(r.digest), packId: id, offset: r.offset, storedLength: r.storedLength, rawLength: r.rawLength, flag: r.flag };
      const list = out.good.get(hex);
      if (list) list.push({ entry, pack: id });
      else out.good.set(hex, [{ entry, pack: id }]);
    }
    out.recordsGood += good;
    out.recordsBad += badRecords.length + scan.damaged.length;
    const headerBad = scan.headerProblem ?? (scan.packId !== null && scan.packId !== id ? `pack id ${scan.packId.toString(16)} in the header, file name says ${packFileName(id)}` : null);
    if (headerBad || scan.damaged.length || badRecords.length) out.damagedPacks.push({ pack: path, header: headerBad, ranges: scan.damaged, badRecords });
    if (!good) await aside(path, 'SV_ERR_STORE_CORRUPT_PACK', `no readable record (${headerBad ?? scan.damaged[0]?.what ?? 'empty pack'})`);
    done += buf.length;
    opts.progress?.({ bytesDone: done, bytesTotal: total });
  }
}

/** Write the new segment, then remove every other segment file. Returns how many were removed. */
async function publish(store: Store, entries: readonly IndexEntry[], seq: bigint): Promise<number> {
  const name = await writeSegment(store.backend, entries, seq);
  let removed = 0;
  for await (const o of store.backend.list('index/')) {
    const other = o.key.slice('index/'.length);
    if (other === name || !other.endsWith('.idx')) continue;
    const regular = await store.backend.stat(o.key).then(() => true, () => false);
    if (regular) {
      await store.backend.delete(o.key);
      removed++;
    }
  }
  await store.loadIndex();
  return removed;
}
