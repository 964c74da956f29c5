/**
 * Issue 9: `shadowvault disk --help` answered SV_ERR_CLI_UNKNOWN_COMMAND. Now `disk --help` prints the disk
 * sub-commands with their usage (exit 0); `disk` alone prints the same (exit 2, like `shadowvault` alone); an
 * unknown sub-command points to `shadowvault disk --help`.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { childEnv, CLI, nodeCommand } from '../helpers/env.js';

function sv(...args: string[]) {
  return spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', env: childEnv() });
}

t.test('disk --help lists the disk sub-commands with their usage', async (t) => {
  for (const flag of ['--help', '-h']) {
    const r = sv('disk', flag);
    t.equal(r.status, 0, `disk ${flag} exits 0: ${r.stderr}`);
    t.equal(r.stderr, '');
    for (const sub of ['info', 'cat', 'convert']) t.match(r.stdout, new RegExp(`^  ${sub} +\\S`, 'mu'), `lists ${sub}`);
    t.match(r.stdout, /shadowvault disk convert <in> <out> .*--input-format/u, 'with the usage of each');
  }
  const bare = sv('disk');
  t.equal(bare.status, 2, 'disk alone: usage, exit 2');
  t.match(bare.stdout, /^usage: shadowvault disk <subcommand>/u);
  const unknown = sv('disk', 'frobnicate');
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /^error SV_ERR_CLI_UNKNOWN_COMMAND: unknown command "disk frobnicate"; see shadowvault disk --help/u);
});
