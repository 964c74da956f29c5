/** `shadowvault bench` and `npm run bench` run the suites and print a table or JSON (a smoke run: --quick). */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { childEnv, CLI, nodeCommand, REPO_ROOT, requireTool } from '../helpers/env.js';

interface Report {
  machine: Record<string, unknown>;
  quick: boolean;
  suites: Array<{ name: string; rows: Array<Record<string, unknown>>; notes: string[] }>;
}

t.test('shadowvault bench --quick --json --suite native', async (t) => {
  requireTool('zstd');
  const r = spawnSync(...nodeCommand([CLI, 'bench', '--quick', '--json', '--suite', 'native']), { encoding: 'utf8', cwd: REPO_ROOT, env: childEnv() });
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.quick, true);
  t.match(report.machine, { cpus: Number, node: process.version });
  t.equal(report.suites.length, 1);
  const suite = report.suites[0]!;
  t.equal(suite.name, 'native');
  for (const data of ['random', 'zero', 'text']) {
    const rows = suite.rows.filter((row) => row.data === data);
    t.equal(rows.length, 7, `${data}: the CLI yardstick + 3 block sizes x (1 thread, pool)`);
    t.ok(rows.some((row) => row.mode === 'zstd -1 -T1 (CLI)'), `${data}: zstd CLI row`);
    t.ok(rows.every((row) => typeof row['MB/s best'] === 'number' && (row['MB/s best'] as number) > 0), `${data}: positive rates`);
  }
  t.ok(suite.notes.some((n) => /target/.test(n)), 'notes say whether the targets are met');
});

t.test('npm run bench entry prints a table; unknown suites are usage errors', async (t) => {
  const entry = join(REPO_ROOT, 'build', 'bench', 'run.js');
  const help = spawnSync(...nodeCommand([entry, '--help']), { encoding: 'utf8', env: childEnv() });
  t.equal(help.status, 0);
  t.match(help.stdout, /native/);
  const bad = spawnSync(...nodeCommand([entry, '--suite', 'nope']), { encoding: 'utf8', env: childEnv() });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /SV_ERR_CLI_BAD_USAGE: unknown suite nope/);
});
