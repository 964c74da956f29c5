/**
 * gc's reference table (storage/refs.ts, refwalk.ts): after any sequence of backups, prunes and gcs over several
 * sources (shared blocks, trees of depth 1-3), the table gc wrote equals an independent recount of every point's
 * tree, gc leaves no unreferenced blob behind, and every point restores bit-identical. An incremental gc reads
 * exactly the pages that die (or are new), a full one every distinct page; a missing, corrupt, foreign or wrong
 * table is rebuilt.
 */
import { closeSync, copyFileSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import t, { type Test } from 'tap';
import { prng } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, prune, restore, verify, fileRefs } from '../../src/sync/index.js';
import { BlobReader } from '../../storage/blobs.js';
import { isZeroDigest } from '../../storage/codec.js';
import { entryAt } from '../../storage/index.js';
import { collectGarbage } from '../../storage/gc.js';
import { REFS_FILE } from '../../storage/layout.js';
import { encodeRefState, parseRefState, RefTable } from '../../storage/refs.js';
import { Store } from '../../storage/store.js';
import { diskShape, walkTree } from '../../storage/walk.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from '../sync/helpers.js';

const KiB = 1024;
const MiB = 1 << 20;
t.teardown(closePool);

type Counts = Map<string, [number, number]>;

/** Reference counts recomputed from scratch: each distinct page's slots, plus each disk root. */
async function recount(dir: string): Promise<{ counts: Counts; pages: Set<string>; perPoint: Map<string, Set<string>> }> {
  const store = await Store.open(dir);
  const reader = new BlobReader(store.ref, await store.loadIndex());
  const counts: Counts = new Map();
  const bump = (hex: string, k: 0 | 1): void => {
    const c = counts.get(hex) ?? [0, 0];
    c[k]++;
    counts.set(hex, c);
  };
  const pages = new Set<string>();
  const perPoint = new Map<string, Set<string>>();
  for (const source of await store.listSources()) {
    for (const id of await store.listPointIds(source)) {
      const m = await store.readPoint(source, id);
      const mine = new Set<string>();
      for (const d of m.disks) {
        // Pages of this point alone (to know which die with it), then the store-wide distinct walk.
        await walkTree(reader.readPage, diskShape(m, d), Buffer.from(d.root, 'hex'), {
          page: (digest) => { const hex = digest.toString('hex'); if (mine.has(hex)) return false; mine.add(hex); return true; },
          leaf: () => undefined,
        });
        await walkTree(reader.readPage, diskShape(m, d), Buffer.from(d.root, 'hex'), {
          page: (digest) => {
            const hex = digest.toString('hex');
            bump(hex, 0);
            if (pages.has(hex)) return false;
            pages.add(hex);
            return true;
          },
          leaf: (page) => {
            for (let o = 0; o < page.length; o += 32) if (!isZeroDigest(page, o)) bump(page.toString('hex', o, o + 32), 1);
          },
        });
      }
      perPoint.set(`${source}/${id}`, mine);
    }
  }
  reader.close();
  return { counts, pages, perPoint };
}

function tableOf(dir: string): { counts: Counts; points: string[] } {
  const s = parseRefState(readFileSync(join(dir, REFS_FILE)), REFS_FILE);
  return { counts: s.table.toMap(), points: [...s.points.keys()].sort() };
}

const sorted = (m: Counts): Array<[string, [number, number]]> => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));

async function indexDigests(dir: string): Promise<Set<string>> {
  const index = await (await Store.open(dir)).loadIndex();
  const out = new Set<string>();
  for (const seg of index.segments) for (let i = 0; i < seg.count; i++) out.add(entryAt(seg, i).digest.toString('hex'));
  return out;
}

/** The table gc left equals the recount, and the index holds exactly the referenced blobs. */
async function checkTable(t: Test, dir: string, what: string): Promise<void> {
  const want = await recount(dir);
  const got = tableOf(dir);
  t.same(sorted(got.counts), sorted(want.counts), `${what}: table equals an independent recount (${want.counts.size} blobs)`);
  t.same([...await indexDigests(dir)].sort(), [...want.counts.keys()].sort(), `${what}: the index holds exactly the referenced blobs`);
}

interface Disk { path: string; size: number; blockSize: number; sparse: boolean }

function makeDisk(path: string, size: number, blockSize: number, sparse: boolean, seed: number): Disk {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  if (!sparse) {
    const buf = Buffer.alloc(size);
    const rand = prng(seed);
    for (let o = 0; o < size; o += 64 * KiB) if (rand() < 0.6) randomFillSync(buf, o, 64 * KiB);
    writeSync(fd, buf, 0, size, 0);
  }
  closeSync(fd);
  return { path, size, blockSize, sparse };
}

/** Overwrite a few blocks (random data, a copy of another block, or zeros); returns the change list. */
function mutate(d: Disk, rand: () => number, pool: Buffer[]): Array<[number, number]> {
  const fd = openSync(d.path, 'r+');
  const changes: Array<[number, number]> = [];
  const n = 1 + Math.floor(rand() * 6);
  for (let k = 0; k < n; k++) {
    const off = Math.floor(rand() * (d.size / d.blockSize)) * d.blockSize;
    const r = rand();
    let buf: Buffer;
    if (r < 0.4) buf = randomFillSync(Buffer.alloc(d.blockSize));
    else if (r < 0.8 && pool.length) buf = Buffer.from(pool[Math.floor(rand() * pool.length)]!.subarray(0, d.blockSize)); // shared content
    else buf = Buffer.alloc(d.blockSize);
    if (buf.length < d.blockSize) buf = Buffer.concat([buf, Buffer.alloc(d.blockSize - buf.length)]);
    writeSync(fd, buf, 0, d.blockSize, off);
    if (pool.length < 16) pool.push(buf);
    changes.push([off, d.blockSize]);
  }
  closeSync(fd);
  return changes;
}

t.test('the table equals a recount after random backups, prunes and gcs; every point restores', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const disks: Record<string, Disk> = {
    a: makeDisk(join(dir, 'a.raw'), 8 * MiB, 64 * KiB, false, 1), // depth 1 (the root is a leaf)
    b: makeDisk(join(dir, 'b.raw'), 8 * MiB, 64 * KiB, false, 1), // same content as a: blocks shared across sources
    c: makeDisk(join(dir, 'c.raw'), 6 * MiB, 4 * KiB, false, 2), // depth 2
    d: makeDisk(join(dir, 'd.raw'), 4 * 1024 * MiB + 64 * KiB, 4 * KiB, true, 3), // depth 3, sparse
  };
  const rand = prng(77);
  const pool: Buffer[] = [];
  const expected = new Map<string, { source: string; sha: string; copy: string }>();
  const names = Object.keys(disks);
  let gcs = 0;
  for (let step = 0; step < 48; step++) {
    const r = rand();
    const source = names[Math.floor(rand() * names.length)]!;
    const d = disks[source]!;
    if (r < 0.5 || step < names.length) {
      const first = !expected.size || ![...expected.values()].some((e) => e.source === source);
      const changes = first ? null : mutate(d, rand, pool);
      const useList = d.sparse || (changes !== null && rand() < 0.5);
      const p = await backup({ store, source, disks: fileRefs([d.path]), blockSize: d.blockSize, changed: useList && changes ? [changes] : undefined });
      if (!d.sparse) {
        const copy = join(dir, `${source}-${p.id}.raw`);
        copyFileSync(d.path, copy);
        expected.set(`${source}/${p.id}`, { source, sha: sha256(copy), copy });
      } else expected.set(`${source}/${p.id}`, { source, sha: '', copy: '' });
    } else if (r < 0.75) {
      const res = await prune({ store, source, retention: { maxCount: 1 + Math.floor(rand() * 3) } }).catch(() => ({ removed: [] as string[] }));
      for (const id of res.removed) expected.delete(`${source}/${id}`);
    } else {
      const g = await gc({ store });
      gcs++;
      t.equal(g.mark, gcs === 1 ? 'full' : 'incremental', `step ${step}: gc ${gcs} mark is ${g.mark} (${g.fullReason ?? 'table loaded'})`);
      await checkTable(t, store, `step ${step}`);
      t.same(tableOf(store).points, [...expected.keys()].sort(), `step ${step}: the table lists exactly the store's points`);
    }
  }
  await prune({ store, source: 'a', retention: { maxCount: 1 } }).then((res) => res.removed.forEach((id) => expected.delete(`a/${id}`)));
  const last = await gc({ store });
  t.equal(last.mark, 'incremental', 'the last gc is incremental');
  await checkTable(t, store, 'end');
  const full = await gc({ store, full: true });
  t.equal(full.mark, 'full', 'gc --full rebuilds');
  t.equal(full.fullReason, 'requested', 'and says why');
  t.equal(full.blobsDeleted, 0, 'a full mark after an incremental gc finds nothing more to delete');
  t.same((await verify({ store })).bad, [], 'verify is clean');
  for (const [key, e] of expected) {
    if (!e.copy) continue;
    const out = join(dir, `out-${key.replace('/', '-')}.raw`);
    await restore({ store, source: e.source, point: key.split('/')[1]!, out, format: 'raw' });
    t.equal(sha256(out), e.sha, `${key} restores bit-identical`);
  }
  const dPoints = [...expected.keys()].filter((k) => k.startsWith('d/'));
  t.ok(dPoints.length > 0, 'the depth-3 source has points');
  t.ok(gcs >= 3, `${gcs} gcs ran during the sequence`);
});

t.test('an incremental gc reads exactly the pages that die; a full one every distinct page', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const d = makeDisk(join(dir, 'c.raw'), 12 * MiB, 4 * KiB, false, 9);
  const rand = prng(5);
  const pool: Buffer[] = [];
  for (let i = 0; i < 12; i++) await backup({ store, source: 'c', disks: fileRefs([d.path]), blockSize: d.blockSize, changed: i ? [mutate(d, rand, pool)] : undefined });
  const first = await gc({ store });
  const before = await recount(store);
  t.equal(first.mark, 'full', 'the first gc builds the table');
  t.equal(first.fullReason, 'no table', 'because there is none');
  t.equal(first.pagesRead, before.pages.size, `it reads every distinct page once (${before.pages.size})`);
  const again = await gc({ store });
  t.equal(again.pagesRead, 0, 'a gc with nothing new reads no page');
  t.equal(again.blobsDeleted, 0, 'and deletes nothing');
  const ids = await (await Store.open(store)).listPointIds('c');
  const victim = ids[3]!;
  const others = new Set([...before.perPoint].filter(([k]) => k !== `c/${victim}`).flatMap(([, s]) => [...s]));
  const dying = [...before.perPoint.get(`c/${victim}`)!].filter((p) => !others.has(p));
  await prune({ store, source: 'c', pointIds: [victim] });
  const inc = await gc({ store });
  t.equal(inc.mark, 'incremental', 'after pruning one point gc is incremental');
  t.equal(inc.pointsRemoved, 1, 'one point uncounted');
  t.equal(inc.pagesRead, dying.length, `it reads only the ${dying.length} pages that die with it (of ${before.pages.size})`);
  t.ok(inc.blobsDeleted >= dying.length, `and deletes them (${inc.blobsDeleted} blobs)`);
  await backup({ store, source: 'c', disks: fileRefs([d.path]), blockSize: d.blockSize, changed: [mutate(d, rand, pool)] });
  const after = await recount(store);
  const latest = (await (await Store.open(store)).listPointIds('c')).at(-1)!;
  const known = new Set([...after.perPoint].filter(([k]) => k !== `c/${latest}`).flatMap(([, s]) => [...s]));
  const fresh = [...after.perPoint.get(`c/${latest}`)!].filter((p) => !known.has(p));
  const add = await gc({ store });
  t.equal(add.pointsAdded, 1, 'a new point is counted');
  t.equal(add.pagesRead, fresh.length, `reading only its ${fresh.length} new pages`);
  await checkTable(t, store, 'after the new point');
});

t.test('a missing, corrupt, foreign or wrong table is rebuilt; an inflated one only keeps blobs until --full', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const d = makeDisk(join(dir, 'a.raw'), 4 * MiB, 64 * KiB, false, 4);
  const rand = prng(8);
  const pool: Buffer[] = [];
  for (let i = 0; i < 4; i++) await backup({ store, source: 'a', disks: fileRefs([d.path]), changed: i ? [mutate(d, rand, pool)] : undefined });
  await gc({ store });
  const path = join(store, REFS_FILE);
  const good = readFileSync(path);

  writeFileSync(path, good.subarray(0, good.length - 7));
  let r = await gc({ store });
  t.same([r.mark, r.fullReason], ['full', 'corrupt table'], 'a truncated table: full mark');
  await checkTable(t, store, 'after a truncated table');

  const other = join(dir, 'other');
  await backup({ store: other, source: 'x', disks: fileRefs([d.path]) });
  await gc({ store: other });
  copyFileSync(join(other, REFS_FILE), path);
  r = await gc({ store });
  t.same([r.mark, r.fullReason], ['full', 'other store'], "another store's table: full mark");
  await checkTable(t, store, "after another store's table");

  // A table whose counts are too low (valid checksum): pruning makes a count go below zero → rebuilt.
  const low = parseRefState(readFileSync(path), path);
  writeFileSync(path, encodeRefState({ ...low, table: new RefTable() })); // the points listed, no counts
  await prune({ store, source: 'a', retention: { maxCount: 1 } });
  r = await gc({ store });
  t.same([r.mark, r.fullReason], ['full', 'table mismatch'], 'counts too low: the mismatch is found and the table rebuilt');
  await checkTable(t, store, 'after a table with low counts');

  // Inflated counts: incremental gc keeps those blobs (never deletes what might be used); --full reclaims them.
  await backup({ store, source: 'a', disks: fileRefs([d.path]), changed: [mutate(d, rand, pool)] });
  await gc({ store });
  const cur = parseRefState(readFileSync(path), path);
  const inflated = { ...cur, table: new RefTable() };
  for (const [hex, [p, b]] of cur.table.toMap()) inflated.table.insertRecord(Buffer.from(hex, 'hex'), 0, p ? p + 1 : 0, b ? b + 1 : 0);
  writeFileSync(path, encodeRefState(inflated));
  await prune({ store, source: 'a', retention: { maxCount: 1 } });
  const kept = await gc({ store });
  t.equal(kept.mark, 'incremental', 'inflated counts go unnoticed by an incremental gc');
  const full = await gc({ store, full: true });
  t.ok(full.blobsDeleted > 0, `gc --full reclaims what the inflated table kept (${full.blobsDeleted} blobs)`);
  await checkTable(t, store, 'after gc --full');
  const out = join(dir, 'out.raw');
  await restore({ store, source: 'a', out, format: 'raw' });
  t.equal(sha256(out), sha256(d.path), 'the remaining point restores bit-identical');
});

t.test('points published and pruned while gc marks are counted before it sweeps', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const a = makeDisk(join(dir, 'a.raw'), 4 * MiB, 64 * KiB, false, 21);
  const b = makeDisk(join(dir, 'b.raw'), 4 * MiB, 4 * KiB, false, 22);
  const rand = prng(23);
  const pool: Buffer[] = [];
  for (let i = 0; i < 3; i++) await backup({ store, source: 'a', disks: fileRefs([a.path]), changed: i ? [mutate(a, rand, pool)] : undefined });
  for (let i = 0; i < 2; i++) await backup({ store, source: 'b', disks: fileRefs([b.path]), blockSize: b.blockSize, changed: i ? [mutate(b, rand, pool)] : undefined });
  await gc({ store });
  await prune({ store, source: 'a', retention: { maxCount: 1 } });
  const shas = new Map<string, string>();
  const r = await collectGarbage(await Store.open(store), {
    afterMark: async () => {
      // Published after the first mark: its new blocks are in no table gc loaded or built so far.
      const fresh = mutate(b, rand, pool).concat(mutate(b, rand, pool));
      const pb = await backup({ store, source: 'b', disks: fileRefs([b.path]), blockSize: b.blockSize, changed: [fresh] });
      shas.set(`b/${pb.id}`, sha256(b.path));
      await prune({ store, source: 'b', retention: { maxCount: 1 } }); // a point the first mark counted goes
      const pa = await backup({ store, source: 'a', disks: fileRefs([a.path]), changed: [mutate(a, rand, pool)] });
      shas.set(`a/${pa.id}`, sha256(a.path));
    },
  });
  t.equal(r.mark, 'incremental', 'incremental');
  t.equal(r.pointsAdded, 2, 'the two points published meanwhile were counted');
  t.equal(r.pointsRemoved, 2 + 2, "a's two pruned points, then b's two pruned meanwhile, were uncounted");
  await checkTable(t, store, 'after gc with backups and prunes in between');
  for (const [key, sha] of shas) {
    const [source, point] = key.split('/') as [string, string];
    const out = join(dir, `out-${source}.raw`);
    await restore({ store, source, point, out, format: 'raw' });
    t.equal(sha256(out), sha, `${key}, published during gc, restores bit-identical`);
  }
  t.same((await verify({ store })).bad, [], 'verify is clean');
});
