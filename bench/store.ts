/**
 * Suite `store`: the volume store and sync engine (issue 4). A generated raw disk (bench/gen-disk.ts: 4 MiB
 * regions, 40% zero, 30% compressible, 30% random; 4 GiB, `--quick` 256 MiB) backed up through the real CLI in
 * child processes (wall time and peak RSS from /usr/bin/time -v), from the page cache:
 *   full backup; day 2 (1% of 64 KiB blocks overwritten, scattered) with a change list, and by digest
 *   comparison (after removing the change-list point and gc); store growth of day 2 vs the compressed size of
 *   the changed blocks; day 3 (5%); restore of day 3 to raw.
 * Scale (in process, programmatic API): a sparse 2 TiB disk (`--quick` 64 GiB) with 1,000 points (`--quick`
 * 60), each writing a few blocks with a change list: listing, backup, prune and gc figures.
 * SHADOWVAULT_BENCH_TMP chooses the folder (default the OS temp folder). Two more rows measure the engine alone: the same
 * full backup and a restore with the store (and restore output) on a tmpfs (SHADOWVAULT_BENCH_TMPFS, default /dev/shm),
 * and one row the folder's durable write rate (2 GiB of random data in 8 MiB writes, then fsync).
 * Investigation switches: SHADOWVAULT_BENCH_SKIP_SCALE=1 leaves out the scale part; SHADOWVAULT_BENCH_KEEP=1 keeps
 * the bench folder (store, disk, day files; its path is logged) instead of deleting it; SHADOWVAULT_BENCH_WRAP="CMD
 * ARGS... --" runs the restore steps' node under that command (e.g. `perf stat -a -o FILE --`), inside /usr/bin/time.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdtempSync, openSync, readSync as fsReadSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { packBlocks } from '../src/native/index.js';
import { closePool } from '../src/pool/index.js';
import { backup, gc, listPoints, prune, fileRefs } from '../src/sync/index.js';
import { cliTimed, timedRow } from './cli-timed.js';
import { changeDay, generateDisk, prng } from './gen-disk.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const MiB = 1 << 20;
const cli = cliTimed;
const row = timedRow;

function du(dir: string): number {
  let n = 0;
  for (const sub of ['packs', 'index', 'points/vm']) {
    for (const f of readdirSync(join(dir, sub))) n += statSync(join(dir, sub, f)).size;
  }
  return n;
}

function compressedSize(path: string, changes: Array<[number, number]>): number {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(64 * 1024);
  let n = 0;
  try {
    for (const [off, len] of changes) {
      fsReadSync(fd, buf, 0, len, off);
      const r = packBlocks(buf.subarray(0, len), 64 * 1024, 1);
      n += r.payload.length;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** Sustained durable write rate of the folder's file system: `bytes` of random data in 8 MiB writes, one fsync. */
function diskWriteFsync(dir: string, bytes: number): { seconds: number } {
  const path = join(dir, 'fsync-probe.bin');
  const buf = Buffer.allocUnsafe(8 * MiB);
  randomFillSync(buf);
  spawnSync('sync');
  const t0 = process.hrtime.bigint();
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < bytes; at += buf.length) writeSync(fd, buf, 0, Math.min(buf.length, bytes - at), at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(path, { force: true });
  return { seconds };
}

/** SHADOWVAULT_BENCH_WRAP split on spaces: a command prefix for the restore steps (investigation only). */
function benchWrap(): string[] {
  return (process.env.SHADOWVAULT_BENCH_WRAP ?? '').split(' ').filter(Boolean);
}

/** A tmpfs folder for the engine-only rows: SHADOWVAULT_BENCH_TMPFS, else /dev/shm; undefined when absent. */
function tmpfsDir(): string | undefined {
  const dir = process.env.SHADOWVAULT_BENCH_TMPFS || '/dev/shm';
  return existsSync(dir) ? dir : undefined;
}

async function scale(o: BenchOptions, dir: string): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const size = o.quick ? 64 * 1024 * MiB : 2 * 1024 * 1024 * MiB;
  const points = o.quick ? 60 : 1000;
  const disk = join(dir, 'sparse.raw');
  const store = join(dir, 'scale-store');
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  const rand = prng(5);
  const block = Buffer.alloc(64 * 1024);
  const t0 = Date.now();
  await backup({ store, source: 'big', disks: fileRefs([disk]) });
  const initialS = (Date.now() - t0) / 1000;
  let lastS = 0;
  for (let i = 1; i < points; i++) {
    const changes: Array<[number, number]> = [];
    const wfd = openSync(disk, 'r+');
    for (let k = 0; k < 16; k++) {
      const off = Math.floor(rand() * (size / 65536)) * 65536;
      randomFillSync(block);
      writeSync(wfd, block, 0, block.length, off);
      changes.push([off, 65536]);
    }
    closeSync(wfd);
    const s = Date.now();
    await backup({ store, source: 'big', disks: fileRefs([disk]), changed: [changes] });
    lastS = (Date.now() - s) / 1000;
  }
  let s = Date.now();
  const listed = await listPoints({ store, source: 'big' });
  const listS = (Date.now() - s) / 1000;
  s = Date.now();
  const gcNothing = await gc({ store });
  const gcNothingS = (Date.now() - s) / 1000;
  s = Date.now();
  const gcAgain = await gc({ store });
  const gcAgainS = (Date.now() - s) / 1000;
  s = Date.now();
  const pr = await prune({ store, source: 'big', retention: { maxCount: Math.floor(points / 2) } });
  const pruneS = (Date.now() - s) / 1000;
  s = Date.now();
  const gcHalf = await gc({ store });
  const gcHalfS = (Date.now() - s) / 1000;
  await prune({ store, source: 'big', retention: { maxCount: Math.floor(points / 2) - 10 } });
  s = Date.now();
  const gcTen = await gc({ store });
  const gcTenS = (Date.now() - s) / 1000;
  s = Date.now();
  const gcFull = await gc({ store, full: true });
  const gcFullS = (Date.now() - s) / 1000;
  const rows: BenchRow[] = [
    { step: `scale: initial backup of sparse ${size / 2 ** 40 >= 1 ? `${size / 2 ** 40} TiB` : `${size / 2 ** 30} GiB`}`, seconds: initialS },
    { step: `scale: backup #${points} (16 changed blocks, change list)`, seconds: lastS },
    { step: `scale: list ${listed.length} points`, seconds: listS },
    { step: `scale: first gc, nothing to delete (${gcNothing.mark} mark: ${gcNothing.pointsMarked} points)`, seconds: gcNothingS, 'pages read': gcNothing.pagesRead },
    { step: `scale: gc again, nothing new (${gcAgain.mark})`, seconds: gcAgainS, 'pages read': gcAgain.pagesRead },
    { step: `scale: prune ${pr.removed.length} points`, seconds: pruneS },
    { step: `scale: gc after pruning ${pr.removed.length} points (${gcHalf.mark}, deleted ${gcHalf.blobsDeleted} blobs)`, seconds: gcHalfS, 'pages read': gcHalf.pagesRead },
    { step: `scale: gc after pruning 10 more (${gcTen.mark}, deleted ${gcTen.blobsDeleted} blobs)`, seconds: gcTenS, 'pages read': gcTen.pagesRead },
    { step: `scale: gc --full, same store (${gcFull.pointsMarked} points, deleted ${gcFull.blobsDeleted})`, seconds: gcFullS, 'pages read': gcFull.pagesRead },
  ];
  return { rows, notes: [] };
}

export const storeSuite: Suite = {
  name: 'store',
  description: 'Volume store + sync engine: full/incremental/express backup, growth, restore, peak RSS; 2 TiB sparse x 1,000 points scale',
  async run(o: BenchOptions): Promise<SuiteResult> {
    const dir = mkdtempSync(join(process.env.SHADOWVAULT_BENCH_TMP || tmpdir(), 'sv-bench-store-'));
    try {
      const size = o.quick ? 256 * MiB : 4096 * MiB;
      const disk = join(dir, 'disk.raw');
      const store = join(dir, 'store');
      o.log(`store: generating ${size / MiB} MiB disk`);
      generateDisk(disk, size, 1);
      spawnSync('sync'); // the generator's dirty pages must not compete with the store's fsyncs
      spawnSync('cat', [disk], { stdio: ['ignore', 'ignore', 'inherit'] }); // into the page cache
      const rows: BenchRow[] = [];
      o.log('store: full backup');
      const full = cli(['backup', disk, '--store', store, '--source', 'vm']);
      rows.push(row('day 1 full backup', size, full));
      const day2 = changeDay(disk, size, 1, 2);
      writeFileSync(join(dir, 'day2.json'), JSON.stringify(day2));
      const changedCompressed = compressedSize(disk, day2);
      const before = du(store);
      o.log('store: day 2 with change list');
      const inc = cli(['backup', disk, '--store', store, '--source', 'vm', '--changed', join(dir, 'day2.json')]);
      const growth = du(store) - before;
      rows.push(row(`day 2 change list (${day2.length} blocks)`, size, inc, { 'growth/compressed': Number((growth / changedCompressed).toFixed(2)) }));
      unlinkSync(join(store, 'points', 'vm', `${String(inc.json.id)}.json`));
      cli(['gc', '--store', store]);
      const before2 = du(store);
      o.log('store: day 2 by digest comparison');
      const exp = cli(['backup', disk, '--store', store, '--source', 'vm']);
      rows.push(row('day 2 digest comparison', size, exp, { 'growth/compressed': Number(((du(store) - before2) / changedCompressed).toFixed(2)) }));
      const day3 = changeDay(disk, size, 5, 3);
      writeFileSync(join(dir, 'day3.json'), JSON.stringify(day3));
      const d3 = cli(['backup', disk, '--store', store, '--source', 'vm', '--changed', join(dir, 'day3.json')]);
      rows.push(row(`day 3 change list (${day3.length} blocks)`, size, d3));
      o.log('store: restore');
      const rs = cli(['restore', 'vm', '--store', store, '--out', join(dir, 'out.raw'), '--format', 'raw'], benchWrap());
      rows.push(row('restore day 3 to raw', size, rs));
      rmSync(join(dir, 'out.raw'), { force: true });
      o.log('store: disk write+fsync rate');
      const probe = Math.min(size, 2048 * MiB);
      const dd = diskWriteFsync(dir, probe);
      rows.push({ step: 'disk: write + fsync (8 MiB writes, random data)', MB: Math.round(probe / 1e6), seconds: Number(dd.seconds.toFixed(2)), 'MB/s': Math.round(probe / 1e6 / dd.seconds) });
      const shm = tmpfsDir();
      if (shm) {
        // The engine's own capacity: the same disk (page cache) into a store on a tmpfs (no device, no fsync wait).
        const tdir = mkdtempSync(join(shm, 'sv-bench-store-'));
        try {
          o.log(`store: full backup and restore, store on tmpfs (${shm})`);
          const tstore = join(tdir, 'store');
          const tf = cli(['backup', disk, '--store', tstore, '--source', 'vm']);
          rows.push(row('store on tmpfs: day 1 full backup', size, tf));
          const tr = cli(['restore', 'vm', '--store', tstore, '--out', join(tdir, 'out.raw'), '--format', 'raw'], benchWrap());
          rows.push(row('store on tmpfs: restore to raw (output on tmpfs)', size, tr));
        } finally {
          if (process.env.SHADOWVAULT_BENCH_KEEP === '1') {
            rmSync(join(tdir, 'out.raw'), { force: true });
            o.log(`store: kept ${tdir}`);
          } else rmSync(tdir, { recursive: true, force: true });
        }
      }
      if (process.env.SHADOWVAULT_BENCH_SKIP_SCALE !== '1') {
        o.log('store: scale');
        const sc = await scale(o, dir);
        rows.push(...sc.rows);
      }
      return {
        columns: ['step', 'MB', 'seconds', 'MB/s', 'MB/cpu-s', 'engine s', 'peak RSS MiB', 'growth/compressed', 'pages read'],
        rows,
        notes: [
          `changed blocks day 2: ${day2.length} × 64 KiB, compressed ${(changedCompressed / MiB).toFixed(2)} MiB; growth = packs + index + manifest bytes added`,
          'targets: full >= 1000 MB/s, day 2 change list < 1 s, day 2 digest < 3 s, growth <= 4x, restore >= 1000 MB/s, RSS < 512 MiB',
        ],
      };
    } finally {
      await closePool();
      if (process.env.SHADOWVAULT_BENCH_KEEP === '1') o.log(`store: kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    }
  },
};
