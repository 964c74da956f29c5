#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to build/ by `npm run setup` (or `npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../build/src/cli/run.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('error SV_ERR_CORE_INTERNAL: shadowvault is not built; run `npm run setup` in the checkout first\n');
  process.exit(1);
}
await import(entry.href);
