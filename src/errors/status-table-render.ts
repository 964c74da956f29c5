/**
 * Renders src/errors/status-table.ts from the catalogue (`npm run docs:errors`, with docs/ERRORS.md): the one
 * thing SvError needs at run time (each code's HTTP status) as a single generated module, so that a process
 * does not load the 24 area tables and their summaries to raise or match an error (a new CLI process's start).
 */
import { CATALOGUE } from './catalogue.js';

export function renderStatusTable(): string {
  const rows = Object.entries(CATALOGUE).map(([code, spec]) => `  ${code}: ${spec.status},`);
  return [
    '// Generated from src/errors/codes/*.ts by `npm run docs:errors`; do not edit by hand. Each code\'s HTTP status,',
    '// the only part of the catalogue SvError needs at run time (typed: tsc refuses a missing or unknown code).',
    "import type { SvErrorCode } from './catalogue.js';",
    '',
    'export const STATUS: Readonly<Record<SvErrorCode, number>> = {',
    ...rows,
    '};',
    '',
  ].join('\n');
}
