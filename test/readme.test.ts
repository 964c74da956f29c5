// The README's Quick start: exactly two command lines, and CI runs the test one, nothing weaker.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { REPO_ROOT } from './helpers/env.js';

t.test('README quick start and .ci/run agree', async (t) => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = /## Quick start\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const lines = block.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  t.equal(lines.length, 2, 'the Quick start has exactly two command lines');
  const ci = readFileSync(join(REPO_ROOT, '.ci', 'run'), 'utf8');
  const ciLine = ci.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('set ') && !l.startsWith('cd '));
  t.same(ciLine, [lines[1]], '.ci/run runs the README test line');
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.ok(pkg.scripts['setup'] && pkg.scripts['setup:test'] && pkg.scripts['start'] && pkg.scripts['test'], 'the scripts the lines use exist');
});

t.test('README says how to run the soak sizes, with the variable test/helpers/soak.ts reads', async (t) => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const soak = readFileSync(join(REPO_ROOT, 'test', 'helpers', 'soak.ts'), 'utf8');
  t.match(soak, /process\.env\.SHADOWVAULT_SOAK === '1'/, 'soak.ts reads SHADOWVAULT_SOAK=1');
  t.match(readme, /SHADOWVAULT_SOAK=1 npx tap build\/test\/\S+\.test\.js/, 'README: one file at soak size');
  t.match(readme, /SHADOWVAULT_SOAK=1 npm test/, 'README: the whole suite at soak size');
});
