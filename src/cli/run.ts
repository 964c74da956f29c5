/** Process entry: runs the CLI with the real process streams and sets the exit code. */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
