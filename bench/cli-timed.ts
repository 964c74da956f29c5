/**
 * Running the real CLI in a child process for a benchmark row: `node bin/shadowvault.js ARGS --json` under
 * `/usr/bin/time -v`, which gives wall time, CPU seconds (user + system, all threads) and peak RSS; the
 * command's JSON answer comes back too. Used by the store and s3 suites, so both measure the same way.
 */
import { spawnSync } from 'node:child_process';
import type { BenchRow } from './types.js';

const CLI = new URL('../../bin/shadowvault.js', import.meta.url).pathname;

export interface Timed { wallS: number; cpuS: number; rssMiB: number; json: Record<string, unknown> }

/** Run the CLI (after the optional `wrap` command prefix); throws with its stderr when it fails. */
export function cliTimed(args: string[], wrap: string[] = []): Timed {
  const r = spawnSync('/usr/bin/time', ['-v', ...wrap, process.execPath, CLI, ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`shadowvault ${args.join(' ')}: ${r.stderr}`);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024;
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  const wallS = wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : NaN;
  const cpuS = Number(/User time \(seconds\): ([\d.]+)/.exec(r.stderr)?.[1] ?? NaN) + Number(/System time \(seconds\): ([\d.]+)/.exec(r.stderr)?.[1] ?? NaN);
  return { wallS, cpuS, rssMiB: rss, json: JSON.parse(r.stdout) as Record<string, unknown> };
}

/** A row of a timed CLI step that moved `bytes` (of the disk): seconds, MB/s, MB per CPU-s, engine s, RSS. */
export function timedRow(step: string, bytes: number, t: Timed, extra: Record<string, string | number> = {}): BenchRow {
  return { step, MB: Math.round(bytes / 1e6), seconds: Number(t.wallS.toFixed(2)), 'MB/s': Math.round(bytes / 1e6 / t.wallS), 'MB/cpu-s': Math.round(bytes / 1e6 / t.cpuS), 'engine s': Number(((t.json.durationMs as number) / 1000).toFixed(2)), 'peak RSS MiB': Math.round(t.rssMiB), ...extra };
}
