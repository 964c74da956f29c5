/**
 * The benchmark runner shared by `npm run bench` (bench/run.ts) and `shadowvault bench`:
 * `[--json] [--suite NAME]... [--quick]`. Tables go to stdout (or one JSON document with --json);
 * progress goes to stderr.
 */
import { parseCommandArgs, printJson } from '../src/cli/args.js';
import { SvError } from '../src/errors/index.js';
import { closePool } from '../src/pool/index.js';
import { formatReport, machine, type SuiteReport } from './report.js';
import { SUITES } from './suites.js';

export const BENCH_USAGE = 'shadowvault bench [--json] [--suite NAME]... [--quick]';

export interface BenchIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export async function runBench(args: string[], io: BenchIo): Promise<number> {
  const { values } = parseCommandArgs(
    args,
    { json: { type: 'boolean' }, suite: { type: 'string', multiple: true }, quick: { type: 'boolean' } },
    BENCH_USAGE,
  );
  if (values.help) {
    io.stdout.write(`usage: ${BENCH_USAGE}\n\nsuites:\n${SUITES.map((s) => `  ${s.name.padEnd(10)} ${s.description}`).join('\n')}\n`);
    return 0;
  }
  const wanted = values.suite ?? [];
  const unknown = wanted.filter((w) => !SUITES.some((s) => s.name === w));
  if (unknown.length) {
    throw new SvError('SV_ERR_CLI_BAD_USAGE', `unknown suite ${unknown.join(', ')}; suites: ${SUITES.map((s) => s.name).join(', ')}\nusage: ${BENCH_USAGE}`, {
      suites: SUITES.map((s) => s.name),
    });
  }
  const selected = wanted.length ? SUITES.filter((s) => wanted.includes(s.name)) : SUITES;
  const quick = values.quick ?? false;
  const log = (line: string) => void io.stderr.write(`${line}\n`);
  const reports: SuiteReport[] = [];
  const host = machine();
  if (!values.json) io.stdout.write(`# shadowvault bench${quick ? ' --quick' : ''}: ${host.cpu} x${host.cpus}, node ${host.node}, load ${host.loadavg1m}\n\n`);
  try {
    for (const suite of selected) {
      log(`bench: suite ${suite.name}...`);
      const started = process.hrtime.bigint();
      const result = await suite.run({ quick, log });
      const report: SuiteReport = { name: suite.name, description: suite.description, seconds: Number(process.hrtime.bigint() - started) / 1e9, ...result };
      reports.push(report);
      if (!values.json) io.stdout.write(`${formatReport(report)}\n`);
    }
  } finally {
    await closePool();
  }
  if (values.json) printJson(io, { machine: host, quick, suites: reports });
  return 0;
}
