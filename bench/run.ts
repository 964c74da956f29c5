/** `npm run bench` entry: node build/bench/run.js [--json] [--suite NAME]... [--quick] */
import { hasCode, isSvError, wrapSystemError } from '../src/errors/index.js';
import { runBench } from './main.js';

try {
  process.exitCode = await runBench(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
} catch (err) {
  const e = isSvError(err) ? err : wrapSystemError(err);
  process.stderr.write(`error ${e.code}: ${e.message}\n`);
  process.exitCode = hasCode(e, 'SV_ERR_CLI_BAD_USAGE') ? 2 : 1;
}
