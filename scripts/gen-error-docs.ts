/** Writes docs/ERRORS.md from the error catalogue (`npm run docs:errors`). */
import { writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../src/errors/docs.js';

const target = new URL('../../docs/ERRORS.md', import.meta.url); // build/scripts → repo root
writeFileSync(target, renderErrorDocs());
process.stdout.write(`wrote ${target.pathname}\n`);
