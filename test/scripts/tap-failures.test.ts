// scripts/tap-failures.ts over a TAP stream that real tap wrote for a suite with failures at two depths,
// and over mutated streams (it never throws, whatever the stream holds).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { renderFailures, tapFailures } from '../../scripts/tap-failures.js';
import { REPO_ROOT, tempDir } from '../helpers/env.js';

t.test('failures in a real tap stream are named by their subtest path, with their diagnostic', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'two.test.mjs');
  writeFileSync(file, [
    `import t from ${JSON.stringify(join(REPO_ROOT, 'node_modules', 'tap', 'dist', 'esm', 'index.js'))};`,
    `t.test('outer', async (t) => {`,
    `  t.ok(true, 'fine');`,
    `  await t.test('inner', async (t) => { t.equal(1, 2, 'one is two'); });`,
    `});`,
    `t.equal('a', 'b', 'top level mismatch');`,
    `t.ok(true, 'also fine');`,
  ].join('\n'));
  // A test file run on its own prints its TAP stream; the runner indents it under `# Subtest: FILE`, as here.
  const run = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' });
  t.not(run.status, 0, 'the file fails');
  const stream = `# Subtest: ${file}\n${run.stdout.split('\n').map((l) => (l ? `    ${l}` : l)).join('\n')}\nnot ok 1 - ${file}\n`;
  const failures = tapFailures(stream);
  const leaves = failures.filter((f) => f.leaf);
  t.same(leaves.map((f) => f.line.replace(/ # time=.*$/, '')), ['not ok 1 - one is two', 'not ok 2 - top level mismatch'], 'the two failing assertions are the leaves');
  t.equal(leaves[0]!.path.at(-1), 'inner', 'the nested one is under its subtest');
  t.same(leaves[0]!.path, [file, 'outer', 'inner'], 'the path starts at the file');
  t.match(leaves[0]!.diagnostic.join('\n'), /compare: ===/, 'its YAML diagnostic is kept');
  t.ok(failures.some((f) => f.path.length === 0 && f.line.endsWith(file) && !f.leaf), 'the failing file is reported, not as a leaf');
  const text = renderFailures(failures);
  t.match(text, /^# 2 failing assertion\(s\)/);
  t.match(text, /outer > inner > not ok 1 - one is two/);
  t.equal(tapFailures('ok 1 - x\n1..1\n').length, 0, 'a passing stream has none');
});

t.test('fuzz: mutated streams never throw', async (t) => {
  const base = ['# Subtest: f', '    # Subtest: a', '        not ok 1 - x', '          ---', '          at: here', '          ...', '    not ok 1 - a', 'not ok 1 - f', '1..1'];
  let seed = 7;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  for (let i = 0; i < 2000; i++) {
    const lines = [...base];
    for (let k = 0; k < 4; k++) {
      const at = rnd(lines.length + 1);
      const pick = [' ', '    ', '---', '...', 'not ok', '# Subtest: ', '\t', ''][rnd(8)]!;
      lines.splice(at, rnd(2), (' '.repeat(rnd(12)) + pick + lines[rnd(lines.length)]!).slice(0, 40));
    }
    renderFailures(tapFailures(lines.join(rnd(2) ? '\n' : '\r\n')));
  }
  t.pass('2000 mutated streams');
});
