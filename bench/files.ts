/**
 * Suite `files` (issue 12, item-level restore): cold browsing of a 2 TiB sparse disk and `files get` speed.
 *
 * Setup (needs root for the ntfs-3g FUSE mount; mkntfs, ntfs-3g, sgdisk, python3): a 2 TiB sparse raw disk with a
 * GPT (sgdisk) and one NTFS partition over all of it (mkntfs -Q on a 2 TiB sparse file, then ntfs-3g writes a
 * folder of 10,000 small files, a 1 MiB file and a 1 GiB file of random bytes; copied into the disk at 1 MiB by
 * its data extents, then made a dynamic VHDX by qemu-img), backed up by the engine; and a 1 GiB raw disk holding the same 1 GiB of random bytes,
 * backed up as another source. `--quick`: a 64 GiB disk, 1,000 files, 64 MiB. Sizes from the environment (each
 * overrides the default and the quick value): SHADOWVAULT_BENCH_FILES_DISK_GIB, _ENTRIES, _BIG_MIB, _RUNS.
 * SHADOWVAULT_BENCH_FILES_DIR=FOLDER keeps the fixture there: built when FOLDER/store does not exist, reused (and
 * not deleted) when it does, so that later runs skip the setup (give the same sizes again).
 *
 * Every row gives wall and CPU seconds (user + system; worker threads included; of the child process for the
 * CLI rows): on the shared build machine the load makes wall times meaningless, CPU times much less so.
 *
 * Rows (store in the page cache; "cold" = a process or session that has read nothing yet):
 *   - `files ls` of the 10,000-entry folder, as a new CLI process (node start included) and in process (open the
 *     point, partitions, NTFS, list: a fresh block cache);
 *   - a 1 MiB file fetched: `files get` as a new CLI process, and in process (open + read);
 *   - through a running appliance (files-appliance.ts; SHADOWVAULT_BENCH_FILES_APPLIANCE=0 skips them): the same
 *     listing and 1 MiB fetch as `files ls|get --url` CLI processes and as single HTTP requests, each on a fresh
 *     `serve` process (cold point, empty block cache);
 *   - `files get` of the 1 GiB file into a folder (fsynced) vs `restore` of the 1 GiB disk (raw, fsynced), MB/s of
 *     data, interleaved runs.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowse } from '../src/files/browse.js';
import { getItems } from '../src/files/extract.js';
import { BlobCache } from '../src/points/cache.js';
import { closePool } from '../src/pool/index.js';
import { backup, restore } from '../src/sync/index.js';
import { applianceRuns, type ApplianceTiming } from './files-appliance.js';
import { measureInterleaved, MiB, runCpuTimedSync } from './measure.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const CLI = fileURLToPath(new URL('../../bin/shadowvault.js', import.meta.url));
const GiB = 1024 * MiB;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * MiB });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

/** Copy the data extents of `from` into `to` at `offset` (SEEK_DATA/SEEK_HOLE: holes stay holes). */
const SPARSE_COPY = `
import os, sys
src, dst, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
fi = os.open(src, os.O_RDONLY); fo = os.open(dst, os.O_WRONLY)
end = os.fstat(fi).st_size; pos = 0
while pos < end:
    try: pos = os.lseek(fi, pos, os.SEEK_DATA)
    except OSError: break
    hole = os.lseek(fi, pos, os.SEEK_HOLE)
    while pos < hole:
        n = min(8 << 20, hole - pos)
        os.pwrite(fo, os.pread(fi, n, pos), off + pos); pos += n
os.fsync(fo)
`;
import { fileRefs } from '../src/sources/file.js';

function seconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

interface Timing {
  readonly wall: number;
  readonly cpu: number;
}

/** Wall and CPU seconds of `fn` run in this process (CPU of every thread: the worker pool's included). */
async function timed(fn: () => Promise<unknown> | unknown): Promise<Timing> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const c = process.cpuUsage(c0);
  return { wall: seconds(process.hrtime.bigint() - t0), cpu: (c.user + c.system) / 1e6 };
}

/** A positive number from the environment, or `fallback`. */
function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!(n > 0)) throw new Error(`${name}=${raw}: expected a positive number`);
  return n;
}

interface Sizes {
  readonly diskSize: number;
  readonly entries: number;
  readonly bigSize: number;
}

/** Build the NTFS disk and the flat disk in `dir` and back both up into `dir`/store (see the top comment). */
async function setUp(options: BenchOptions, dir: string, { diskSize, entries, bigSize }: Sizes): Promise<void> {
  const mnt = join(dir, 'mnt');
  let mounted = false;
  try {
    const part = join(dir, 'part.img');
    const partSize = diskSize - 2 * MiB;
    options.log(`files: mkntfs on a ${diskSize / GiB} GiB sparse partition`);
    sh('truncate', ['-s', String(partSize), part]);
    sh('mkntfs', ['-Q', '-F', '-q', '-L', 'bench', part]);
    mkdirSync(mnt);
    sh('ntfs-3g', [part, mnt]);
    mounted = true;
    options.log(`files: writing ${entries} files, 1 MiB and ${bigSize / MiB} MiB files through ntfs-3g`);
    mkdirSync(join(mnt, 'big'));
    for (let i = 0; i < entries; i++) writeFileSync(join(mnt, 'big', `file-${String(i).padStart(5, '0')}.txt`), `entry ${i}\n`);
    writeFileSync(join(mnt, 'one-mib.bin'), randomFillSync(Buffer.allocUnsafe(MiB)));
    const big = randomFillSync(Buffer.allocUnsafe(bigSize));
    writeFileSync(join(mnt, 'big.bin'), big);
    sh('umount', [mnt]);
    mounted = false;
    const disk = join(dir, 'disk.raw');
    sh('truncate', ['-s', String(diskSize), disk]);
    sh('sgdisk', ['-n', `1:2048:${(2048 + partSize / 512) - 1}`, '-t', '1:0700', disk]);
    sh('python3', ['-c', SPARSE_COPY, part, disk, String(MiB)]);
    rmSync(part);
    // As a dynamic VHDX (qemu-img skips the holes): the engine then reads only the allocated blocks.
    const vhdx = join(dir, 'disk.vhdx');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic', disk, vhdx]);
    rmSync(disk);
    const flat = join(dir, 'flat.raw');
    writeFileSync(flat, big);
    options.log('files: backing up both disks');
    const store = join(dir, 'store');
    await backup({ store, source: 'ntfs2t', disks: fileRefs([vhdx]) });
    await backup({ store, source: 'flat', disks: fileRefs([flat]) });
  } finally {
    if (mounted) spawnSync('umount', [mnt]);
  }
}

function best(xs: number[]): { best: number; median: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { best: s[0]!, median: s[s.length >> 1]! };
}

export const filesSuite: Suite = {
  name: 'files',
  description: 'Item-level restore: cold files ls of 10,000 entries and a 1 MiB fetch on a 2 TiB NTFS disk; files get 1 GiB vs restore',
  async run(options: BenchOptions): Promise<SuiteResult> {
    const diskSize = envNumber('SHADOWVAULT_BENCH_FILES_DISK_GIB', options.quick ? 64 : 2048) * GiB;
    const entries = envNumber('SHADOWVAULT_BENCH_FILES_ENTRIES', options.quick ? 1000 : 10_000);
    const bigSize = envNumber('SHADOWVAULT_BENCH_FILES_BIG_MIB', options.quick ? 64 : 1024) * MiB;
    const runs = envNumber('SHADOWVAULT_BENCH_FILES_RUNS', options.quick ? 1 : 5);
    const keep = process.env.SHADOWVAULT_BENCH_FILES_DIR;
    const dir = keep ?? mkdtempSync(join(tmpdir(), 'sv-bench-files-'));
    const store = join(dir, 'store');
    const work = join(dir, 'outputs');
    try {
      if (existsSync(store)) options.log(`files: reusing the fixture in ${dir}`);
      else await setUp(options, dir, { diskSize, entries, bigSize });
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work);

      const lsCli: Timing[] = [];
      const lsIn: Timing[] = [];
      const getCli: Timing[] = [];
      const getIn: Timing[] = [];
      for (let i = 0; i < runs; i++) {
        const ls = runCpuTimedSync(process.execPath, [CLI, 'files', 'ls', 'ntfs2t', '/big', '--store', store, '--json']);
        const n = (JSON.parse(ls.stdout) as { entries: unknown[] }).entries.length;
        if (n !== entries) throw new Error(`files ls listed ${n} entries, expected ${entries}`);
        lsCli.push(ls);
        lsIn.push(await timed(async () => {
          const s = await openBrowse({ store, source: 'ntfs2t', operation: 'bench', cache: new BlobCache() });
          try {
            const { fs } = await s.pick();
            await fs.list('/big');
          } finally {
            await s.close();
          }
        }));
        getCli.push(runCpuTimedSync(process.execPath, [CLI, 'files', 'get', 'ntfs2t', '/one-mib.bin', '--out', join(work, `get-${i}`), '--store', store]));
        getIn.push(await timed(async () => {
          const s = await openBrowse({ store, source: 'ntfs2t', operation: 'bench', cache: new BlobCache() });
          try {
            const { fs } = await s.pick();
            const h = await fs.open('/one-mib.bin');
            await h.read(0, h.size);
          } finally {
            await s.close();
          }
        }));
      }
      const row = (operation: string, xs: Timing[], target: number | null): BenchRow => {
        const w = best(xs.map((x) => x.wall));
        const c = best(xs.map((x) => x.cpu));
        return {
          operation, 'best s': w.best, 'median s': w.median, 'CPU s (median)': c.median,
          target: target === null ? '-' : `< ${target} s`, met: target === null ? '-' : w.median < target ? 'yes' : c.median < target ? 'CPU only' : 'no',
        };
      };
      const rows: BenchRow[] = [
        row(`files ls of ${entries} entries, new CLI process`, lsCli, 1),
        row(`files ls of ${entries} entries, in process (open + list)`, lsIn, 1),
        row('1 MiB file, files get as a new CLI process', getCli, 0.2),
        row('1 MiB file, in process (open + read)', getIn, 0.2),
      ];
      if (process.env.SHADOWVAULT_BENCH_FILES_APPLIANCE !== '0') {
        const a = await applianceRuns({ cli: CLI, store, dir, source: 'ntfs2t', diskPath: join(dir, 'disk.vhdx'), work }, runs, entries, options.log);
        const cpuOf = (x: ApplianceTiming): number => x.serverCpu + x.clientCpu;
        const arow = (operation: string, xs: ApplianceTiming[], target: number): BenchRow => {
          const w = best(xs.map((x) => x.wall));
          const c = best(xs.map(cpuOf));
          const sv = best(xs.map((x) => x.serverCpu));
          return { operation: `${operation} (appliance CPU median ${sv.median.toFixed(3)} s)`, 'best s': w.best, 'median s': w.median, 'CPU s (median)': c.median, target: `< ${target} s`, met: w.median < target ? 'yes' : c.median < target ? 'CPU only' : 'no' };
        };
        rows.push(
          arow(`files ls --url of ${entries} entries, new CLI process, fresh appliance`, a.lsCli, 1),
          arow(`GET .../files?path=/big (${entries} entries), fresh appliance`, a.lsHttp, 1),
          arow('1 MiB file, files get --url as a new CLI process, fresh appliance', a.getCli, 0.2),
          arow('1 MiB file, GET .../content, fresh appliance', a.getHttp, 0.2),
        );
      }

      options.log('files: files get of the big file vs restore of the flat disk');
      let n = 0;
      const out = (): string => {
        rmSync(work, { recursive: true, force: true }); // one output at a time: 1 GiB each
        mkdirSync(work);
        return join(work, `big-${n++}`);
      };
      const speeds = await measureInterleaved([
        { name: 'get', bytes: bigSize, run: async () => {
          const s = await openBrowse({ store, source: 'ntfs2t', operation: 'bench', cache: new BlobCache() });
          try {
            await getItems((await s.pick()).fs, ['/big.bin'], { out: out() });
          } finally {
            await s.close();
          }
        } },
        { name: 'restore', bytes: bigSize, run: async () => { await restore({ store, source: 'flat', out: `${out()}.raw`, format: 'raw' }); } },
      ], Math.min(runs, 3));
      const g = speeds.get('get')!;
      const r = speeds.get('restore')!;
      const gCpu = g.cpu ?? 0;
      const rCpu = r.cpu ?? 0;
      rows.push({
        operation: `files get of a ${bigSize / MiB} MiB file, MB/s (best / median; CPU: MB per CPU-s)`, 'best s': g.best, 'median s': g.median, 'CPU s (median)': gCpu,
        target: '>= 0.8x restore', met: `${g.median >= 0.8 * r.median ? 'yes' : 'no'} (CPU ${gCpu >= 0.8 * rCpu ? 'yes' : 'no'})`,
      });
      rows.push({
        operation: `restore of a ${bigSize / MiB} MiB raw disk, MB/s (best / median; CPU: MB per CPU-s)`, 'best s': r.best, 'median s': r.median, 'CPU s (median)': rCpu,
        target: '-', met: `ratio ${(g.median / r.median).toFixed(2)} (CPU ${(gCpu / rCpu).toFixed(2)})`,
      });
      return {
        columns: ['operation', 'best s', 'median s', 'CPU s (median)', 'target', 'met'],
        rows,
        notes: [
          `${diskSize / GiB} GiB dynamic VHDX disk, GPT, one NTFS partition (mkntfs -Q, 4 KiB clusters) written by ntfs-3g; store in the page cache; ${runs} runs`,
          'the last two rows are MB/s (10^6 B/s) of file data, not seconds, and MB per CPU-second (best run); both fsync their output',
          '"CPU only": the wall-time target was missed but the CPU time is under it (a loaded machine)',
        ],
      };
    } finally {
      await closePool();
      rmSync(keep ? work : dir, { recursive: true, force: true });
    }
  },
};
