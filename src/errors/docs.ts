/** Renders docs/ERRORS.md from the catalogue, so the documentation cannot drift from the code. */
import { AREAS } from './catalogue.js';
import type { ErrorSpec } from './spec.js';

export function renderErrorDocs(): string {
  const out: string[] = [
    '# Error codes',
    '',
    'Every error shadowvault raises carries a stable code `SV_ERR_<AREA>_<PROBLEM>`. The CLI prints',
    '`error <CODE>: <message>`; the admin API answers `{ "code", "message", "details" }` with the status below.',
    'Generated from `src/errors/codes/*.ts` by `npm run docs:errors`; do not edit by hand.',
    '',
  ];
  for (const [area, table] of Object.entries(AREAS)) {
    out.push(`## ${area}`, '', '| code | HTTP status | meaning |', '|---|---|---|');
    for (const [code, spec] of Object.entries(table as Record<string, ErrorSpec>)) {
      out.push(`| \`${code}\` | ${spec.status} | ${spec.summary.replaceAll('|', '\\|')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
