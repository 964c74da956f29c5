/**
 * Suite `native`: packBlocks throughput (BLAKE3 + zero check + zstd level 1, hashing included) on random,
 * all-zero and text-like data at 64 KiB, 1 MiB and 4 MiB blocks, on one thread (the main thread, calls of
 * one 4 MiB batch each) and on the whole worker pool (batches of max(4 MiB, block) over a
 * SharedArrayBuffer, all submitted at once). The yardstick is the `zstd` CLI on the same bytes in the same
 * run: `zstd -1 -T1 -q -c FILE > /dev/null`, FILE in the page cache, timed around the process.
 * Targets (issue 2): text 1 thread >= 85% of the CLI; zero >= 10,000 MB/s; pool >= 1.7x one thread on text.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { packBlocks } from '../src/native/index.js';
import { getPool, poolSize } from '../src/pool/index.js';
import { packInPool } from '../src/pool/pack.js';
import { randomBytes, shared, textLike, zeroBytes } from './data.js';
import { formatSize, KiB, measureInterleaved, MiB, runCpuTimed, type Throughput, type Variant } from './measure.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const LEVEL = 1;
const BATCH = 4 * MiB;
const BLOCK_SIZES = [64 * KiB, MiB, 4 * MiB];
const DATASETS = [
  { name: 'random', make: randomBytes },
  { name: 'zero', make: zeroBytes },
  { name: 'text', make: (size: number) => textLike(size, 7) },
] as const;

const COLUMNS = ['data', 'block', 'mode', 'MB/s best', 'MB/s median', 'MB per CPU-s', 'ratio', 'vs CLI (wall)', 'vs CLI (CPU)', 'pool speedup'];

function batchBytes(blockSize: number): number {
  return Math.max(BATCH, blockSize);
}

/** One thread: packBlocks over consecutive batches; returns the payload bytes produced. */
function packSequential(data: Uint8Array, blockSize: number): number {
  const step = batchBytes(blockSize);
  let payload = 0;
  for (let off = 0; off < data.byteLength; off += step) payload += packBlocks(data.subarray(off, off + step), blockSize, LEVEL).payload.byteLength;
  return payload;
}

/** The pool: every batch submitted at once over shared memory. */
async function packPooled(data: Uint8Array, blockSize: number): Promise<number> {
  const step = batchBytes(blockSize);
  const jobs: Promise<{ payload: Uint8Array }>[] = [];
  for (let off = 0; off < data.byteLength; off += step) jobs.push(packInPool(data.subarray(off, off + step), blockSize, LEVEL));
  return (await Promise.all(jobs)).reduce((sum, r) => sum + r.payload.byteLength, 0);
}

function zstdCliRatio(file: string, size: number): number | null {
  const r = spawnSync('zstd', ['-1', '-T1', '-q', '-c', file], { maxBuffer: 2 * size + MiB });
  return r.status === 0 ? r.stdout.byteLength / size : null;
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

function row(data: string, block: string, mode: string, t: Throughput, ratio: number | null, cli: Throughput | null, speedup: number | null): BenchRow {
  return {
    data,
    block,
    mode,
    'MB/s best': t.best,
    'MB/s median': t.median,
    'MB per CPU-s': t.cpu ?? null,
    ratio: ratio === null ? null : ratio.toFixed(3),
    'vs CLI (wall)': cli ? pct(t.best / cli.best) : null,
    'vs CLI (CPU)': cli && t.cpu && cli.cpu ? pct(t.cpu / cli.cpu) : null,
    'pool speedup': speedup === null ? null : `${speedup.toFixed(2)}x`,
  };
}

async function run(opts: BenchOptions): Promise<SuiteResult> {
  const size = opts.quick ? 8 * MiB : 64 * MiB;
  const runs = opts.quick ? 2 : 9;
  const threads = poolSize();
  const rows: BenchRow[] = [];
  const checks: string[] = [];
  const load = [loadavg()[0]!];
  const dir = mkdtempSync(join(tmpdir(), 'sv-bench-native-'));
  getPool();
  await Promise.all(Array.from({ length: threads * 2 }, () => packInPool(new Uint8Array(64 * KiB), 64 * KiB, LEVEL))); // threads up, addon loaded
  try {
    for (const dataset of DATASETS) {
      const data = dataset.make(size);
      const sharedData = shared(data);
      const file = join(dir, `${dataset.name}.bin`);
      writeFileSync(file, data);
      readFileSync(file); // in the page cache before timing the CLI
      opts.log(`bench native: ${dataset.name} ${formatSize(size)}: zstd CLI, ${BLOCK_SIZES.map(formatSize).join('/')} blocks on 1 thread and pool x${threads}, interleaved`);
      const variants: Variant[] = [{ name: 'cli', bytes: size, run: () => runCpuTimed('zstd', ['-1', '-T1', '-q', '-c', file]) }];
      for (const blockSize of BLOCK_SIZES) {
        variants.push({ name: `1:${blockSize}`, bytes: size, run: () => void packSequential(data, blockSize) });
        variants.push({ name: `pool:${blockSize}`, bytes: size, run: async () => void (await packPooled(sharedData, blockSize)) });
      }
      const results = await measureInterleaved(variants, runs);
      const cli = results.get('cli')!;
      rows.push(row(dataset.name, 'stream', 'zstd -1 -T1 (CLI)', cli, zstdCliRatio(file, size), null, null));
      for (const blockSize of BLOCK_SIZES) {
        const ratio = packSequential(data, blockSize) / size;
        const single = results.get(`1:${blockSize}`)!;
        const pooled = results.get(`pool:${blockSize}`)!;
        const speedup = pooled.best / single.best;
        rows.push(row(dataset.name, formatSize(blockSize), '1 thread', single, ratio, cli, null));
        rows.push(row(dataset.name, formatSize(blockSize), `pool x${threads}`, pooled, ratio, cli, speedup));
        const vsCli = single.best / cli.best;
        if (dataset.name === 'text') {
          checks.push(`text ${formatSize(blockSize)}, 1 thread: ${pct(vsCli)} of zstd -1 -T1 wall (${pct(single.cpu! / cli.cpu!)} per CPU-s) (target >= 85%): ${vsCli >= 0.85 ? 'met' : 'NOT met'}`);
          checks.push(`text ${formatSize(blockSize)}, pool x${threads}: ${speedup.toFixed(2)}x one thread (target >= 1.7x): ${speedup >= 1.7 ? 'met' : 'NOT met'}`);
        }
        if (dataset.name === 'zero') {
          checks.push(`zero ${formatSize(blockSize)}, 1 thread: ${Math.round(single.best).toLocaleString('en-US')} MB/s (target >= 10,000): ${single.best >= 10_000 ? 'met' : 'NOT met'}`);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  load.push(loadavg()[0]!);
  const notes = [
    `${formatSize(size)} per data set; variants run interleaved (round-robin), ${runs} timed runs each after 1 warm-up. "best" = fastest run (least disturbed by other load); MB/s = 10^6 input bytes/s.`,
    `MB per CPU-s = input bytes / (user + system CPU time) of the most efficient run: this process for packBlocks (all threads), the zstd process for the CLI (its wall time includes starting bash, ~1-2 ms).`,
    `ratio = payload / input; level ${LEVEL}; 1 thread = packBlocks on the main thread in ${formatSize(BATCH)} batches; pool = ${threads} worker threads, batches of max(4 MiB, block) from a SharedArrayBuffer.`,
    `load average (1 min) before/after: ${load.map((l) => l.toFixed(2)).join(' / ')} on ${cpus().length} CPUs (other processes share them).`,
    ...checks,
  ];
  return { columns: COLUMNS, rows, notes };
}

export const nativeSuite: Suite = {
  name: 'native',
  description: 'packBlocks (BLAKE3 + zero check + zstd -1) vs the zstd CLI, one thread and the pool',
  run,
};
