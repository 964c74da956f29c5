// The lazily loaded command registry (src/cli/commands/index.ts): every entry's name is the name of the command
// its module exports, names are unique, and `files ls` as a new process does not load the modules of other
// commands (the API server, the backup engine) nor the worker pool's piscina.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { COMMAND_ENTRIES, loadCommands } from '../../src/cli/commands/index.js';
import { findCommand } from '../../src/cli/main.js';
import { childEnv, REPO_ROOT } from '../helpers/env.js';

t.test('each registry entry loads the command of its name', async (t) => {
  const names = COMMAND_ENTRIES.map((e) => e.name);
  t.equal(new Set(names).size, names.length, 'names are unique');
  const commands = await loadCommands();
  commands.forEach((c, i) => t.equal(c.name, names[i], `entry ${names[i]}`));
});

t.test('the longest name wins', async (t) => {
  t.equal(findCommand(['files', 'ls', '/x'])?.command.name, 'files ls');
  t.same(findCommand(['files', 'ls', '/x'])?.rest, ['/x']);
  t.equal(findCommand(['files']), undefined);
});

/** The module URLs a new process resolves running main(argv) (a loader hook, registered first, records each). */
function modulesLoadedBy(t: Test, argv: string[]): string[] {
  const dir = t.testdir({});
  const seenFile = join(dir, 'seen.txt');
  const hooks = `import { appendFileSync } from 'node:fs';
    export async function resolve(spec, ctx, next) { const r = await next(spec, ctx); appendFileSync(${JSON.stringify(seenFile)}, r.url + '\\n'); return r; }`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
  const main = pathToFileURL(`${REPO_ROOT}/build/src/cli/main.js`).href;
  const script = `
    const { main } = await import(${JSON.stringify(main)});
    const out = { write() { return true; } };
    process.exitCode = await main(${JSON.stringify(argv)}, { stdout: out, stderr: out, env: {} });
  `;
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script], { encoding: 'utf8', env: childEnv() });
  t.equal(r.status, 0, r.stderr);
  return readFileSync(seenFile, 'utf8').split('\n');
}

t.test('files ls --help loads neither other commands nor piscina', async (t) => {
  const seen = modulesLoadedBy(t, ['files', 'ls', '--help']);
  t.ok(seen.some((u) => u.endsWith('/cli/commands/files-ls.js')), 'files-ls loaded');
  for (const not of ['/cli/commands/serve.js', '/cli/commands/backup.js', '/src/api/', '/sync/backup.js', '/formats/write.js', '/piscina/']) {
    t.notOk(seen.some((u) => u.includes(not)), `${not} not loaded`);
  }
});

t.test('files get on a local store loads neither the error catalogue, the appliance client, tar nor object-storage modules', async (t) => {
  // What a new process pays for at start (issue 12: a 1 MiB files get in < 0.2 s): SvError needs only the
  // generated status table; --url and --tar load their modules when given.
  const seen = modulesLoadedBy(t, ['files', 'get', '--help']);
  t.ok(seen.some((u) => u.endsWith('/errors/status-table.js')), 'the status table loaded');
  for (const not of ['/errors/catalogue.js', '/errors/codes/', '/cli/remote.js', '/cli/remote-store.js', '/cli/commands/files-remote.js', '/files/tar.js', '/piscina/',
    '/storage/backend/wrap-', '/storage/state-dir.js', '/storage/compact.js', '/storage/quarantine.js', // object storage, backups, damage
    '/volumes/fs/ext/', '/volumes/fs/fat/']) { // loaded for volumes NTFS does not recognise
    t.notOk(seen.some((u) => u.includes(not)), `${not} not loaded`);
  }
});
