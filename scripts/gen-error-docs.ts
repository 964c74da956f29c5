/** Writes docs/ERRORS.md and src/errors/status-table.ts from the error catalogue (`npm run docs:errors`). */
import { writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../src/errors/docs.js';
import { renderStatusTable } from '../src/errors/status-table-render.js';

for (const [path, text] of [['../../docs/ERRORS.md', renderErrorDocs()], ['../../src/errors/status-table.ts', renderStatusTable()]] as const) {
  const target = new URL(path, import.meta.url); // build/scripts → repo root
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target.pathname}\n`);
}
