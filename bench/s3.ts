/**
 * Suite `s3`: the volume store on S3 (issue 13) against a throwaway Ceph RGW on loopback (test/helpers/ceph.ts:
 * one memstore OSD, so the objects stay in RAM at ~2x: its capacity is sized to the workload and its RSS is
 * reported), next to the local folder store, with the same data.
 *
 * Store rows (the targets), through the real CLI in child processes (bench/cli-timed.ts, as the store
 * suite): the store suite's generated disk (bench/gen-disk.ts; 4 GiB, `--quick` 256 MiB), from the page cache:
 *   day 1 full backup, day 2 (1% of 64 KiB blocks, scattered) with a change list, restore of day 2 to raw;
 * each first into a local folder store, then into `s3://bench/v?endpoint=...` (state folder on local disk).
 * The S3 rows carry the HTTP requests the gateway served (RGW's usage log: every process and thread, workers
 * included), and the notes the ratios against the targets (full <= 1.5x local, day 2 <= 2 s, restore >= 0.5x
 * the local speed) and the local cache's size per TiB of protected data.
 * Backend rows, at the backend interface (default 128 MiB of 16 MiB packs, `--quick` 32 MiB), each for `fs`
 * (FsBackend in a temp folder) and `s3`:
 *   put packs     closed packs from files (`{file}` puts: multipart on S3)
 *   ranged read   every pack read back as 1 MiB ranges, 16 in flight (the restore and verify pattern)
 *   list          one listing of packs/
 * with the requests counted by S3Backend.requestCounts().
 * SHADOWVAULT_BENCH_TMP chooses the folder (default the OS temp folder); SHADOWVAULT_BENCH_S3_SKIP_BACKEND=1
 * leaves out the backend rows.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBackend } from '../storage/backend/fs.js';
import { S3Backend } from '../storage/backend/s3.js';
import type { Backend } from '../storage/backend/types.js';
import { startCeph, type CephCluster, type CephCpu, type RgwUsage } from '../test/helpers/ceph.js';
import { Limit } from '../storage/backend/limit.js';
import { cliTimed, timedRow, type Timed } from './cli-timed.js';
import { changeDay, generateDisk } from './gen-disk.js';
import { MiB, mbps } from './measure.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const PACK = 16 * MiB;
const RANGE = MiB;

async function timed(fn: () => Promise<unknown>): Promise<bigint> {
  const start = process.hrtime.bigint();
  await fn();
  return process.hrtime.bigint() - start;
}

async function steps(name: string, b: Backend, files: string[], counts: () => Record<string, number>): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const bytes = files.length * PACK;
  const keys = files.map((_, i) => `packs/${i.toString(16).padStart(16, '0')}.pack`);
  const row = (step: string, ns: bigint, before: Record<string, number>): BenchRow => {
    const after = counts();
    const req = Object.entries(after).map(([op, n]) => [op, n - (before[op] ?? 0)] as const).filter(([, n]) => n > 0);
    const moves = !step.startsWith('list');
    return { backend: name, step, MiB: moves ? bytes / MiB : null, seconds: Number(ns) / 1e9, 'MB/s': moves ? mbps(bytes, ns) : null, requests: req.map(([op, n]) => `${op} ${n}`).join(', ') || '-' };
  };
  let before = counts();
  // The folder backend gets the bytes (written and fsynced): a {file} put would only move the file into place.
  const put = (file: string, i: number): Promise<void> => (name === 'fs' ? b.put(keys[i]!, readFileSync(file)) : b.put(keys[i]!, { file }));
  rows.push(row('put packs', await timed(() => Promise.all(files.map(put))), before));
  before = counts();
  const limit = new Limit(16);
  rows.push(row('ranged read 1 MiB x16', await timed(() => Promise.all(keys.flatMap((k) => Array.from({ length: PACK / RANGE }, (_, j) => limit.run(() => b.getRange(k, j * RANGE, RANGE)))))), before));
  before = counts();
  rows.push(row('list packs/', await timed(async () => { for await (const o of b.list('packs/')) void o; }), before));
  return rows;
}

/** Bytes of every file under `dir` (the local cache). */
function treeBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? treeBytes(p) : statSync(p).size;
  }
  return n;
}

/** Gateway requests between two usage readings, folded into PUT / GET / HEAD / LIST / DELETE / other. */
function requestsBetween(before: RgwUsage, after: RgwUsage): Record<string, number> {
  const kinds: Record<string, string> = {
    put_obj: 'PUT', init_multipart: 'PUT', complete_multipart: 'PUT', copy_obj: 'PUT',
    get_obj: 'GET', stat_object: 'HEAD', list_bucket: 'LIST', list_buckets: 'LIST', list_bucket_multiparts: 'LIST',
    delete_obj: 'DELETE', multi_object_delete: 'DELETE', abort_multipart: 'DELETE',
  };
  const out: Record<string, number> = {};
  for (const [cat, n] of Object.entries(after)) {
    const d = n - (before[cat] ?? 0);
    if (d > 0) out[kinds[cat] ?? cat] = (out[kinds[cat] ?? cat] ?? 0) + d;
  }
  return out;
}

const fmtRequests = (r: Record<string, number>): string => Object.entries(r).map(([k, n]) => `${k} ${n}`).join(', ') || '-';

interface StoreFigures { rows: BenchRow[]; notes: string[] }

/** The rows: the same disk into a folder store and an S3 store, day 1, day 2, restore. */
async function storeRows(o: BenchOptions, dir: string, ceph: CephCluster): Promise<StoreFigures> {
  const size = o.quick ? 256 * MiB : 4096 * MiB;
  const disk = join(dir, 'disk.raw');
  o.log(`s3: generating ${size / MiB} MiB disk`);
  generateDisk(disk, size, 1);
  spawnSync('sync');
  spawnSync('cat', [disk], { stdio: ['ignore', 'ignore', 'inherit'] }); // into the page cache
  await ceph.bucket('bench');
  const local = ['--store', join(dir, 'store')];
  const state = join(dir, 's3-state');
  const s3 = ['--store', `s3://bench/v?endpoint=${encodeURIComponent(ceph.endpoint)}`, '--state-dir', state];
  const rows: BenchRow[] = [];
  const cores = availableParallelism();
  const timedS3 = async (step: string, args: string[]): Promise<{ t: Timed; req: Record<string, number>; cpu: CephCpu }> => {
    const before = await ceph.usage();
    const cpu0 = ceph.cpuSeconds();
    const t = cliTimed([...args, ...s3]);
    const cpu1 = ceph.cpuSeconds();
    const req = requestsBetween(before, await ceph.usage());
    const cpu: CephCpu = { mon: cpu1.mon - cpu0.mon, osd: cpu1.osd - cpu0.osd, rgw: cpu1.rgw - cpu0.rgw };
    const r = timedRow(`s3: ${step}`, size, t, {
      requests: fmtRequests(req), 'CLI cpu-s': Number(t.cpuS.toFixed(2)), 'rgw cpu-s': Number(cpu.rgw.toFixed(2)),
      'osd cpu-s': Number(cpu.osd.toFixed(2)), 'mon cpu-s': Number(cpu.mon.toFixed(2)),
    });
    rows.push(args[0] === 'points' ? { step: r.step, seconds: r.seconds, 'peak RSS MiB': r['peak RSS MiB'], requests: r.requests } : r);
    return { t, req, cpu };
  };
  /** The S3 step's CPU split and what it means on this machine's cores (docs/BENCHMARKS.md, issue 13). */
  const cpuNote = (what: string, s: { t: Timed; cpu: CephCpu }, local: Timed): string => {
    const daemons = s.cpu.rgw + s.cpu.osd + s.cpu.mon;
    const floor = (daemons + s.t.cpuS) / cores;
    return `${what} CPU: S3 CLI ${s.t.cpuS.toFixed(1)} + radosgw ${s.cpu.rgw.toFixed(1)} + ceph-osd ${s.cpu.osd.toFixed(1)} + ceph-mon ${s.cpu.mon.toFixed(1)} = ${(daemons + s.t.cpuS).toFixed(1)} cpu-s `
      + `(daemons alone ${daemons.toFixed(1)} = ${(daemons / cores).toFixed(2)} s on ${cores} cores) vs local CLI ${local.cpuS.toFixed(1)} cpu-s in ${local.wallS.toFixed(2)} s wall; `
      + `CPU floor of the S3 run on ${cores} cores ${floor.toFixed(2)} s = ${(floor / local.wallS).toFixed(2)}x the local wall time`;
  };
  const timedLocal = (step: string, args: string[]): Timed => {
    const t = cliTimed([...args, ...local]);
    rows.push(timedRow(`local: ${step}`, size, t, { 'CLI cpu-s': Number(t.cpuS.toFixed(2)) }));
    return t;
  };
  o.log('s3: day 1 full backup, local then S3');
  const fullL = timedLocal('day 1 full backup', ['backup', disk, '--source', 'vm']);
  const fullS = await timedS3('day 1 full backup', ['backup', disk, '--source', 'vm']);
  const day2 = changeDay(disk, size, 1, 2);
  writeFileSync(join(dir, 'day2.json'), JSON.stringify(day2));
  o.log('s3: day 2 with a change list, local then S3');
  const incL = timedLocal(`day 2 change list (${day2.length} blocks)`, ['backup', disk, '--source', 'vm', '--changed', join(dir, 'day2.json')]);
  const incS = await timedS3(`day 2 change list (${day2.length} blocks)`, ['backup', disk, '--source', 'vm', '--changed', join(dir, 'day2.json')]);
  const cacheBytes = treeBytes(join(state, 'cache'));
  const out = join(dir, 'out.raw');
  o.log('s3: restore day 2, local then S3');
  const rsL = timedLocal('restore day 2 to raw', ['restore', 'vm', '--out', out, '--format', 'raw']);
  rmSync(out, { force: true });
  const rsS = await timedS3('restore day 2 to raw', ['restore', 'vm', '--out', out, '--format', 'raw']);
  rmSync(out, { force: true });
  await timedS3('points (listing, from the cache)', ['points']);
  const mem = ceph.memoryMiB();
  const stored = (fullS.t.json.bytesStored as number) + (incS.t.json.bytesStored as number);
  const perTiB = (cacheBytes / size) * 2 ** 40;
  return {
    rows,
    notes: [
      `disk ${size / MiB} MiB (40% zero, 30% compressible, 30% random), ${day2.length} changed blocks on day 2; store on ${dir}`,
      `full backup: S3 ${fullS.t.wallS.toFixed(2)} s vs local ${fullL.wallS.toFixed(2)} s = ${(fullS.t.wallS / fullL.wallS).toFixed(2)}x (target <= 1.5x); CPU ${fullS.t.cpuS.toFixed(1)} vs ${fullL.cpuS.toFixed(1)} s`,
      `day 2 incremental on S3: ${incS.t.wallS.toFixed(2)} s (target <= 2 s; local ${incL.wallS.toFixed(2)} s)`,
      `restore: S3 ${Math.round(size / 1e6 / rsS.t.wallS)} MB/s vs local ${Math.round(size / 1e6 / rsL.wallS)} MB/s = ${(rsL.wallS / rsS.t.wallS).toFixed(2)}x the local speed (target >= 0.5x)`,
      cpuNote('full backup', fullS, fullL),
      cpuNote('restore', rsS, rsL),
      `bytes moved: full backup ${((fullS.t.json.bytesStored as number) / 1e6).toFixed(0)} MB stored, restore ${(size / 1e6).toFixed(0)} MB written`,
      `requests per point: full ${fmtRequests(fullS.req)}; day 2 ${fmtRequests(incS.req)}`,
      `local cache after 2 points: ${(cacheBytes / MiB).toFixed(2)} MiB for ${size / MiB} MiB protected (${(stored / MiB).toFixed(0)} MiB stored) = ${(perTiB / 2 ** 30).toFixed(2)} GiB per TiB of protected data`,
      `Ceph memstore RSS after the runs: OSD ${mem.osd.toFixed(0)} MiB, radosgw ${mem.rgw.toFixed(0)} MiB`,
    ],
  };
}

export const s3Suite: Suite = {
  name: 's3',
  description: 'Volume store on a loopback Ceph RGW vs a local folder store (full, day 2, restore, requests, cache); backend puts, ranged reads, list',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const size = options.quick ? 256 * MiB : 4096 * MiB;
    const total = options.quick ? 32 * MiB : 128 * MiB;
    const dir = mkdtempSync(join(process.env.SHADOWVAULT_BENCH_TMP || tmpdir(), 'sv-bench-s3-'));
    const teardowns: (() => void | Promise<void>)[] = [];
    const t = { teardown: (fn: () => void | Promise<void>) => { teardowns.push(fn); } };
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    try {
      options.log('s3: starting a one-node Ceph cluster');
      const started = Date.now();
      // memstore: the packs (about half the disk) at ~2x, plus the backend rows' packs.
      const ceph = await startCeph(t, { memstoreBytes: Math.max(1 << 30, 2 * size), usageLog: true });
      const readyMs = Date.now() - started;
      process.env.AWS_ACCESS_KEY_ID = ceph.credentials.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = ceph.credentials.secretAccessKey;
      const store = await storeRows(options, dir, ceph);
      const backendRows: BenchRow[] = [];
      if (process.env.SHADOWVAULT_BENCH_S3_SKIP_BACKEND !== '1') {
        const files = Array.from({ length: total / PACK }, (_, i) => {
          const f = join(dir, `pack${i}`);
          writeFileSync(f, randomBytes(PACK));
          return f;
        });
        options.log('s3: backend rows, folder backend');
        const fs = new FsBackend(join(dir, 'backend'));
        backendRows.push(...await steps('fs', fs, files, () => ({})));
        await fs.close();
        options.log('s3: backend rows, S3 backend');
        await ceph.bucket('backend');
        const s3 = await S3Backend.open(ceph.ref('backend', 'b/'), { credentials: ceph.credentials });
        backendRows.push(...await steps('s3 (Ceph RGW)', s3, files, () => s3.requestCounts()));
        await s3.close();
      }
      return {
        columns: ['step', 'MB', 'seconds', 'MB/s', 'MB/cpu-s', 'engine s', 'peak RSS MiB', 'CLI cpu-s', 'rgw cpu-s', 'osd cpu-s', 'mon cpu-s', 'requests', 'backend', 'MiB'],
        rows: [...store.rows, ...backendRows.map((r) => ({ ...r, step: `backend: ${String(r.step)}` }))],
        notes: [
          `Ceph RGW 16 (memstore OSD, ${Math.max(1 << 30, 2 * size) / 2 ** 30} GiB capacity) on 127.0.0.1, S3-ready in ${(readyMs / 1000).toFixed(1)} s`,
          ...store.notes,
          `backend rows: ${total / PACK} packs of 16 MiB`,
        ],
      };
    } finally {
      for (const fn of teardowns.reverse()) await fn();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
