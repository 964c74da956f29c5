/**
 * Store building blocks on real files: pack writer/reader (round trip, truncation, damaged record headers),
 * lock files (holder named, release, stale takeover, unreadable lock), index compaction after many backups.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk, prng } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, listPoints, restore, verify, fileRefs } from '../../src/sync/index.js';
import { LockFile } from '../../storage/lock.js';
import { Store } from '../../storage/store.js';
import { packFileName } from '../../storage/layout.js';
import { encodeSegment, entryAt, mergeSegments, parseSegment, type BlobLocation, type IndexEntry } from '../../storage/index.js';
import { PackReader, PackWriter } from '../../storage/pack.js';
import { FsBackend } from '../../storage/backend/fs.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from '../sync/helpers.js';
import { errorCode } from '../helpers/codes.js';

t.teardown(closePool);

const code = errorCode;

t.test('packs: a writer aborted while its job still appends leaves no pack behind', async (t) => {
  let left = 0;
  let cancelled = 0;
  for (let round = 0; round < 30; round++) {
    const store = tempDir(t);
    const dir = join(store, 'packs');
    const w = new PackWriter(new FsBackend(store), 64 * 1024); // rotates every few blobs: packs are being created all the time
    const job = (async () => {
      for (let i = 0; i < 200; i++) await w.append(randomBytes(32), 1, 16384, randomBytes(16384));
    })().catch((err: unknown) => {
      if ((err as { code?: string }).code === 'SV_ERR_CORE_CANCELLED') cancelled++;
    });
    await new Promise((r) => setTimeout(r, round % 7));
    await w.abort();
    await job;
    left += existsSync(dir) ? readdirSync(dir).length : 0;
  }
  t.equal(left, 0, 'no pack file left in any of 30 rounds');
  t.ok(cancelled > 0, `appends after abort fail with SV_ERR_CORE_CANCELLED (${cancelled} rounds)`);
});

t.test('packs: round trip across rotation; truncation and damaged headers are coded errors', async (t) => {
  const store = tempDir(t);
  const dir = join(store, 'packs');
  const w = new PackWriter(new FsBackend(store), 256 * 1024);
  const blobs = Array.from({ length: 40 }, () => ({ digest: randomBytes(32), payload: randomBytes(1000 + Math.floor(Math.random() * 30000)) }));
  const locs: BlobLocation[] = [];
  for (const b of blobs) locs.push(await w.append(b.digest, 1, b.payload.length, b.payload));
  await w.finish();
  t.ok(w.created.length > 1, `${w.created.length} packs (rotated)`);
  const r = new PackReader(dir);
  blobs.forEach((b, i) => t.ok(r.read(b.digest, locs[i]!).equals(b.payload)));
  r.close();
  const last = locs[locs.length - 1]!;
  const path = join(dir, packFileName(last.packId));
  truncateSync(path, statSync(path).size - 10);
  t.equal(code(() => new PackReader(dir).read(blobs[blobs.length - 1]!.digest, last)), 'SV_ERR_STORE_CORRUPT_PACK');
  const rand = prng(8);
  for (let k = 0; k < 60; k++) {
    const i = Math.floor(rand() * (blobs.length - 1));
    const loc = locs[i]!;
    const p = join(dir, packFileName(loc.packId));
    const pos = loc.offset - 48 + Math.floor(rand() * 48);
    const fd = openSync(p, 'r+');
    const orig = readFileSync(p).subarray(pos, pos + 1);
    const flipped = Buffer.from([orig[0]! ^ (1 + Math.floor(rand() * 255))]);
    writeSync(fd, flipped, 0, 1, pos);
    const reader = new PackReader(dir);
    const c = code(() => reader.read(blobs[i]!.digest, loc));
    reader.close();
    writeSync(fd, orig, 0, 1, pos);
    closeSync(fd);
    if (pos - (loc.offset - 48) >= 41 && pos - (loc.offset - 48) < 44) t.equal(c, 'ok', 'reserved bytes are not checked');
    else t.equal(c, 'SV_ERR_STORE_CORRUPT_PACK', `flipped record header byte ${pos - (loc.offset - 48)}`);
  }
  t.equal(code(() => new PackReader(dir).read(randomBytes(32), { ...locs[0]!, packId: 123n })), 'SV_ERR_STORE_CORRUPT_PACK', 'a missing pack');
});

t.test('locks: holder named, release, stale and unreadable locks taken over', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.lock');
  const a = await LockFile.acquire(path, 'backup', 'data source "x"');
  await t.rejects(LockFile.acquire(path, 'prune', 'data source "x"'), { code: 'SV_ERR_STORE_LOCKED', message: new RegExp(`data source "x" is locked by backup \\(pid ${process.pid} on `) });
  await a.release();
  const b = await LockFile.acquire(path, 'prune', 'data source "x"');
  await b.release();
  writeFileSync(path, JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import('node:os')).hostname(), boot: 'unknown', operation: 'gc', since: 'x' }));
  const c = await LockFile.acquire(path, 'gc', 'gc');
  t.equal(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid, 'stale lock (dead pid) taken over');
  await c.release();
  writeFileSync(path, '{"pid": 1, "trunc');
  const d = await LockFile.acquire(path, 'gc', 'gc');
  t.equal(JSON.parse(readFileSync(path, 'utf8')).operation, 'gc', 'unreadable lock (crash while writing) taken over');
  await d.release();
  t.same(readdirSync(dir), [], 'no leftovers');
});

t.test('locks: waiters of one process take the lock in call order; a waiter that gives up lets the next one on', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'commit.lock');
  const a = await LockFile.acquire(path, 'a', 'commit lock', 60_000);
  const order: string[] = [];
  const waiter = (name: string, waitMs: number): Promise<LockFile> => LockFile.acquire(path, name, 'commit lock', waitMs).then((l) => {
    order.push(name);
    return l;
  });
  const b = waiter('b', 60_000);
  const quitter = LockFile.acquire(path, 'quitter', 'commit lock', 1);
  const c = waiter('c', 60_000);
  const d = waiter('d', 60_000);
  await t.rejects(quitter, { code: 'SV_ERR_STORE_LOCKED', message: /commit lock is locked by a \(pid / }, 'a waiter whose time runs out while queued names the holder');
  t.same(order, [], 'nobody else while a holds it');
  await a.release();
  const lb = await b;
  t.same(order, ['b']);
  t.equal(JSON.parse(readFileSync(path, 'utf8')).operation, 'b', 'the file names the holder');
  await lb.release();
  await (await c).release();
  await (await d).release();
  t.same(order, ['b', 'c', 'd'], 'in call order');
  const e = await LockFile.acquire(path, 'e', 'commit lock', 60_000);
  t.equal(JSON.parse(readFileSync(path, 'utf8')).operation, 'e', 'free again');
  await e.release();
  t.same(readdirSync(dir), [], 'no leftovers');
});

t.test('mergeSegments: the newest entry of each digest, sorted, as encodeSegment writes it', async (t) => {
  const rnd = prng(7);
  const pool = Array.from({ length: 300 }, () => randomBytes(32));
  for (const prefixTie of [false, true]) {
    // with prefixTie, many digests share their first 4 bytes (the full comparison decides)
    if (prefixTie) for (const d of pool.slice(0, 150)) pool[0]!.copy(d, 0, 0, 4);
    const sizes = [0, 1, 40, 120, 0, 200, 7, 90];
    const segs = sizes.map((n, k) => {
      const picked = new Map<string, IndexEntry>();
      while (picked.size < n) {
        const d = pool[Math.floor(rnd() * pool.length)]!;
        picked.set(d.toString('hex'), { digest: d, packId: BigInt(k + 1), offset: picked.size, storedLength: 10 + k, rawLength: 20, flag: k % 2 });
      }
      const seq = BigInt(1000 - k); // newest first, as BlobIndex holds them
      return parseSegment(encodeSegment([...picked.values()], seq), `seg${k}`, `seg${k}`, seq, 0);
    });
    const newest = new Map<string, IndexEntry>();
    for (const seg of segs) for (let i = 0; i < seg.count; i++) {
      const e = entryAt(seg, i);
      if (!newest.has(e.digest.toString('hex'))) newest.set(e.digest.toString('hex'), { ...e, digest: Buffer.from(e.digest) });
    }
    t.same(mergeSegments(segs, 5n), encodeSegment([...newest.values()], 5n), `${newest.size} digests over ${sizes.length} segments${prefixTie ? ', half of them with one prefix' : ''}`);
  }
  t.same(mergeSegments([], 5n), encodeSegment([], 5n), 'no segment: an empty one');
});

t.test('points of one store that wait for the commit lock are published together; each restores', async (t) => {
  const dir = tempDir(t);
  const store = await Store.open(join(dir, 'store'), { create: true });
  const disks = [0, 1, 2, 3, 4].map((i) => {
    const d = join(dir, `d${i}.raw`);
    generateDisk(d, 2 << 20, 40 + i);
    return d;
  });
  const hashes: string[][] = disks.map(() => []);
  for (const round of [0, 1]) {
    if (round) disks.forEach((d, i) => changeDay(d, 2 << 20, 5, 700 + i));
    disks.forEach((d, i) => hashes[i]!.push(sha256(d)));
    // the commit lock held while the five runs get there: the first waits for it alone, the four others behind it
    const held = await store.lockCommit('the test');
    const runs = disks.map((d, i) => backup({ store, source: `vm${i}`, disks: fileRefs([d]) }));
    while (store.publishing < disks.length) await new Promise((r) => setTimeout(r, 10));
    t.equal(store.publishing, disks.length, `round ${round}: every point waits for the commit lock`);
    await held.release();
    const results = await Promise.all(runs);
    t.same(results.map((r) => r.kind), disks.map(() => (round ? 'express-full' : 'initial')), `round ${round}: published`);
  }
  t.equal(store.publishing, 0, 'nothing left waiting');
  for (const [i] of disks.entries()) {
    const points = await listPoints({ store, source: `vm${i}` });
    t.equal(points.length, 2, `vm${i}: two points`);
    for (const [k, p] of points.entries()) {
      const out = join(dir, `out-${i}-${k}.raw`);
      await restore({ store, source: `vm${i}`, point: p.id, out });
      t.equal(sha256(out), hashes[i]![k], `vm${i} point ${k} restores`);
    }
  }
  t.same((await verify({ store })).bad, []);
});

t.test('index segments are compacted as backups pile up; every point still restores', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const disk = join(dir, 'd.raw');
  generateDisk(disk, 4 << 20, 12);
  const hashes: string[] = [];
  for (let i = 0; i < 20; i++) {
    if (i) changeDay(disk, 4 << 20, 3, 500 + i);
    await backup({ store, source: 'vm', disks: fileRefs([disk]) });
    hashes.push(sha256(disk));
  }
  const segs = readdirSync(join(store, 'index'));
  t.ok(segs.length <= 17, `${segs.length} segment files after 20 backups`);
  const points = await listPoints({ store, source: 'vm' });
  for (const [i, p] of points.entries()) {
    if (i % 6 !== 0 && i !== points.length - 1) continue;
    const out = join(dir, `${i}.raw`);
    await restore({ store, source: 'vm', point: p.id, out });
    t.equal(sha256(out), hashes[i], `point ${i} restores`);
  }
  t.same((await verify({ store })).bad, []);
});
