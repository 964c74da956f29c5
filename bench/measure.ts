/** Timing helpers for suites: repeat a run, report best and median throughput. */
import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

export interface Throughput {
  /** MB/s (10^6 bytes per second) of the fastest run: the least disturbed by other load. */
  readonly best: number;
  readonly median: number;
  readonly runs: number;
  /** MB per CPU-second (user + system, all threads) of the most efficient run, when measured. */
  readonly cpu?: number;
}

export function mbps(bytes: number, nanoseconds: bigint | number): number {
  return bytes / (Number(nanoseconds) / 1e9) / 1e6;
}

function summarise(rates: number[]): Throughput {
  const sorted = [...rates].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { best: sorted[sorted.length - 1]!, median, runs: rates.length };
}

/** Time `fn` (which processes `bytes` bytes) `runs` times after `warmup` untimed runs. */
export async function measure(bytes: number, runs: number, fn: () => unknown | Promise<unknown>, warmup = 1): Promise<Throughput> {
  for (let i = 0; i < warmup; i++) await fn();
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    rates.push(mbps(bytes, process.hrtime.bigint() - start));
  }
  return summarise(rates);
}

/** One variant of an interleaved measurement; `run` may report its own CPU time (a child process). */
export interface Variant {
  readonly name: string;
  readonly bytes: number;
  run(): Promise<{ cpuMicros: number } | void> | { cpuMicros: number } | void;
}

/**
 * Measure variants round-robin (A B C A B C ...) so that every variant sees the same share of quiet and busy
 * moments on a shared machine. Wall time per run; CPU time from process.cpuUsage() (this process, all its
 * threads) unless the variant reports its own.
 */
export async function measureInterleaved(variants: readonly Variant[], runs: number, warmup = 1): Promise<Map<string, Throughput>> {
  for (let i = 0; i < warmup; i++) for (const v of variants) await v.run();
  const wall = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const cpu = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let i = 0; i < runs; i++) {
    for (const v of variants) {
      const cpuStart = process.cpuUsage();
      const start = process.hrtime.bigint();
      const reported = await v.run();
      const elapsed = process.hrtime.bigint() - start;
      const used = process.cpuUsage(cpuStart);
      const cpuMicros = reported ? reported.cpuMicros : used.user + used.system;
      wall.get(v.name)!.push(mbps(v.bytes, elapsed));
      cpu.get(v.name)!.push(v.bytes / cpuMicros);
    }
  }
  return new Map(variants.map((v) => [v.name, { ...summarise(wall.get(v.name)!), cpu: Math.max(...cpu.get(v.name)!) }]));
}

/**
 * Run a program under bash with stdout to /dev/null and return the CPU time it used (bash's `times`:
 * user + system of waited children). The wall time around this includes bash's start (~1-2 ms).
 */
export function runCpuTimed(cmd: string, args: readonly string[]): Promise<{ cpuMicros: number }> {
  const quoted = shellQuote([cmd, ...args]);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `${quoted} >/dev/null || exit $?; times >&2`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = childCpuSeconds(stderr);
      if (code !== 0 || seconds === undefined) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
      resolve({ cpuMicros: Math.max(1, seconds * 1e6) });
    });
  });
}

/** Words quoted for bash. */
function shellQuote(words: readonly string[]): string {
  return words.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
}

/** user + system seconds of waited children from bash's `times` output (its last line), or undefined. */
function childCpuSeconds(stderr: string): number | undefined {
  const lines = stderr.trim().split('\n');
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines[lines.length - 1] ?? '');
  return m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : undefined;
}

/** Run a program (a new process: e.g. the CLI) and return its stdout, wall seconds and CPU seconds (user + system). */
export function runCpuTimedSync(cmd: string, args: readonly string[]): { stdout: string; wall: number; cpu: number } {
  const quoted = shellQuote([cmd, ...args]);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', `${quoted} || exit $?; times >&2`], { encoding: 'utf8', maxBuffer: 256 * MiB });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = childCpuSeconds(r.stderr ?? '');
  if (r.status !== 0 || cpu === undefined) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.error?.message ?? r.stderr}`);
  return { stdout: r.stdout, wall, cpu };
}

/** Run a program with stdout to /dev/null; resolves when it exits 0 (rejects otherwise). */
export function runToDevNull(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const devNull = openSync('/dev/null', 'w');
    const child = spawn(cmd, args, { stdio: ['ignore', devNull, 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      closeSync(devNull);
      reject(err);
    });
    child.on('close', (code) => {
      closeSync(devNull);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
    });
  });
}

export const MiB = 1 << 20;
export const KiB = 1 << 10;

export function formatSize(bytes: number): string {
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}
