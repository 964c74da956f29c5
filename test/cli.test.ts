// The CLI as a user runs it: a real process through bin/shadowvault.js.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { childEnv, CLI, nodeCommand, REPO_ROOT } from './helpers/env.js';

function sv(...args: string[]) {
  return spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', env: childEnv() });
}

t.test('--version prints package.json version', async (t) => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = sv('--version');
  t.equal(r.status, 0);
  t.equal(r.stdout.trim(), pkg.version);
});

t.test('--help lists every registered command', async (t) => {
  const { loadCommands } = await import('../src/cli/commands/index.js');
  const COMMANDS = await loadCommands();
  const r = sv('--help');
  t.equal(r.status, 0);
  for (const c of COMMANDS) t.match(r.stdout, c.name, `help lists ${c.name}`);
});

t.test('an unknown command is a coded usage error', async (t) => {
  const r = sv('frobnicate');
  t.equal(r.status, 2);
  t.match(r.stderr, /^error SV_ERR_CLI_UNKNOWN_COMMAND: unknown command "frobnicate"/);
});
