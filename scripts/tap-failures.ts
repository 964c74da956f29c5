/**
 * Prints the failures of a saved TAP stream again, each under the path of subtests that leads to it
 * (`npm test` calls it through scripts/test.sh when the suite fails). A CI log is often kept only by its
 * tail; the tail then still names what failed, with tap's YAML diagnostic for each failing assertion.
 *
 * Reading rule (tap 21's output): a `# Subtest: NAME` line at indent i opens a child whose lines sit at
 * indent i + 4; a `not ok` at indent j therefore belongs to the subtests opened at indents j - 4, j - 8, …
 * A failing assertion's diagnostic is the `---` … `...` block right after it, at indent j + 2.
 */
import { readFileSync } from 'node:fs';

const MAX_DIAGNOSTIC_LINES = 40;

export interface TapFailure {
  path: string[];     // enclosing subtests, outermost first (the first is the test file)
  line: string;       // the `not ok` line, unindented
  diagnostic: string[]; // its YAML block, unindented, at most MAX_DIAGNOSTIC_LINES lines
  leaf: boolean;      // no failing child of its own was reported before it
}

export function tapFailures(text: string): TapFailure[] {
  const lines = text.split('\n');
  const open = new Map<number, string>(); // indent → the latest subtest opened there
  const out: TapFailure[] = [];
  const failedBelow = new Set<number>(); // indents at which a `not ok` was seen since the parent opened
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!;
    const indent = raw.length - raw.trimStart().length;
    const body = raw.trimStart();
    const sub = /^# Subtest: (.*)$/.exec(body);
    if (sub) {
      open.set(indent, sub[1]!);
      for (const k of [...open.keys()]) if (k > indent) open.delete(k);
      failedBelow.delete(indent + 4);
      continue;
    }
    if (/^ok \d+/.test(body)) { failedBelow.delete(indent + 4); continue; } // a result line closes its child's scope
    if (!/^not ok \d+/.test(body)) continue;
    const path: string[] = [];
    for (let i = indent - 4; i >= 0; i -= 4) { const name = open.get(i); if (name !== undefined) path.unshift(name); }
    const diagnostic: string[] = [];
    if (lines[n + 1]?.trim() === '---') {
      for (let m = n + 2; m < lines.length && diagnostic.length < MAX_DIAGNOSTIC_LINES; m++) {
        if (lines[m]!.trim() === '...') break;
        diagnostic.push(lines[m]!.slice(Math.min(indent + 2, lines[m]!.length - lines[m]!.trimStart().length)));
      }
    }
    out.push({ path, line: body, diagnostic, leaf: !failedBelow.has(indent + 4) });
    failedBelow.delete(indent + 4);
    failedBelow.add(indent);
  }
  return out;
}

export function renderFailures(failures: TapFailure[]): string {
  if (failures.length === 0) return '# tap-failures: the stream holds no `not ok` line\n';
  const leaves = failures.filter((f) => f.leaf);
  const parts = [`# ${leaves.length} failing assertion(s), repeated here so that the end of the log names them:`];
  for (const f of leaves) {
    parts.push('', `## ${[...f.path, f.line].join(' > ')}`);
    for (const d of f.diagnostic) parts.push(`   ${d}`);
  }
  parts.push('', '# failing test files:');
  for (const f of failures) if (f.path.length === 0) parts.push(`#   ${f.line}`);
  return parts.join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) { process.stderr.write('usage: node build/scripts/tap-failures.js FILE.tap\n'); process.exit(2); }
  process.stdout.write(renderFailures(tapFailures(readFileSync(file, 'utf8'))));
}
