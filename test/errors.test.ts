// The error catalogue: every code well formed, in the right area, documented; errors survive the wire.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { AREAS, CATALOGUE } from '../src/errors/catalogue.js';
import { renderErrorDocs } from '../src/errors/docs.js';
import { renderStatusTable } from '../src/errors/status-table-render.js';
import { fromWire, SvError, toWire, wrapSystemError, type SvErrorCode } from '../src/errors/index.js';
import { REPO_ROOT } from './helpers/env.js';

t.test('every code is SV_ERR_<AREA>_<PROBLEM> and sits in its area table', async (t) => {
  let count = 0;
  for (const [area, table] of Object.entries(AREAS)) {
    for (const [code, spec] of Object.entries(table)) {
      count++;
      t.match(code, new RegExp(`^SV_ERR_${area}_[A-Z0-9]+(_[A-Z0-9]+)*$`), `${code} belongs to area ${area}`);
      t.ok(spec.status >= 400 && spec.status <= 599, `${code} has an HTTP error status`);
      t.ok(spec.summary.length > 10, `${code} has a summary`);
    }
  }
  t.equal(Object.keys(CATALOGUE).length, count, 'no code is defined twice across areas');
});

t.test('docs/ERRORS.md is generated from the catalogue and current', async (t) => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'ERRORS.md'), 'utf8');
  for (const code of Object.keys(CATALOGUE)) t.ok(doc.includes(`\`${code}\``), `${code} is documented`);
  t.equal(doc, renderErrorDocs(), 'docs/ERRORS.md is up to date (run `npm run docs:errors`)');
});

t.test('src/errors/status-table.ts (the run-time statuses) is generated from the catalogue and current', async (t) => {
  const table = readFileSync(join(REPO_ROOT, 'src', 'errors', 'status-table.ts'), 'utf8');
  t.equal(table, renderStatusTable(), 'src/errors/status-table.ts is up to date (run `npm run docs:errors`)');
  for (const [code, spec] of Object.entries(CATALOGUE)) t.equal(new SvError(code as SvErrorCode, 'x').status, spec.status, `${code}: status ${spec.status}`);
});

t.test('errors cross a boundary with their code and details', async (t) => {
  const e = new SvError('SV_ERR_FORMAT_TRUNCATED', 'x.vhd: footer at 512 needs 512 bytes, file has 100', { offset: 512 });
  const back = fromWire(JSON.parse(JSON.stringify(toWire(e))));
  t.equal(back.code, 'SV_ERR_FORMAT_TRUNCATED');
  t.equal(back.status, 422);
  t.same(back.details, { offset: 512 });
  const unknown = fromWire({ code: 'EWHATEVER', message: 'boom' });
  t.equal(unknown.code, 'SV_ERR_CORE_INTERNAL');
  t.match(unknown.message, /EWHATEVER: boom/);
});

t.test('system errors are classified', async (t) => {
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  t.equal(wrapSystemError(full).code, 'SV_ERR_CORE_NO_SPACE');
  const noent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/x' });
  const w = wrapSystemError(noent, 'opening image');
  t.equal(w.code, 'SV_ERR_CORE_IO');
  t.match(w.message, /^opening image: ENOENT/);
  t.equal(wrapSystemError(new Error('odd')).code, 'SV_ERR_CORE_INTERNAL');
});
