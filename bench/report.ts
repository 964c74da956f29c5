/** Printing suite results: an aligned text table, or one JSON document with the machine description. */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import type { BenchRow, SuiteResult } from './types.js';

export interface SuiteReport extends SuiteResult {
  readonly name: string;
  readonly description: string;
  readonly seconds: number;
}

function cell(value: BenchRow[string]): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value)) return value.toLocaleString('en-US');
    const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3;
    return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  return String(value);
}

/** An aligned table (numbers right-aligned) with a header line. */
export function formatTable(result: SuiteResult): string {
  const columns = result.columns ?? Object.keys(result.rows[0] ?? {});
  const cells = result.rows.map((row) => columns.map((c) => cell(row[c] ?? null)));
  const numeric = columns.map((c) => result.rows.some((r) => typeof r[c] === 'number'));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]) =>
    `| ${values.map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(columns), rule, ...cells.map(line)].join('\n');
}

export function formatReport(report: SuiteReport): string {
  const notes = (report.notes ?? []).map((n) => `- ${n}`);
  return [`## ${report.name}: ${report.description} (${report.seconds.toFixed(1)} s)`, '', formatTable(report), ...(notes.length ? ['', ...notes] : []), ''].join('\n');
}

function firstLine(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0]! : null;
}

/** What the figures were measured on. */
export function machine(): Record<string, string | number | null> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? null,
    cpus: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    rustc: firstLine('rustc', ['--version']),
    zstd: firstLine('zstd', ['--version']),
    loadavg1m: Math.round(loadavg()[0]! * 100) / 100,
    date: new Date().toISOString(),
  };
}
