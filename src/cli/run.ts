/**
 * Process entry: runs the CLI with the real process streams and sets the exit code.
 *
 * The heap grows by 4x its live size between full collections (V8's `--heap-growing-percent=300`, read at
 * every collection, so it can be set here, before any work; it applies to the worker threads too). V8's own
 * heuristics kept the old generation about 2 MB above its live size (~13 MB) in a restore from object storage
 * and ran a full collection every ~70 ms: 110 in one 4 GiB restore against 47 with this setting, and 6.2 → 5.0
 * CPU-s for the restoring process (docs/BENCHMARKS.md, "Session 10: garbage collection"). A CLI process
 * holds little live data, so the cost is tens of MiB at most.
 */
import { setFlagsFromString } from 'node:v8';
import { main } from './main.js';

setFlagsFromString('--heap-growing-percent=300');
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
