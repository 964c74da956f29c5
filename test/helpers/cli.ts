/**
 * The CLI in this process: `main(argv, io)` from src/cli/main.ts with string-collecting stdout/stderr. It is
 * the same function `bin/shadowvault.js` runs (src/cli/run.ts only passes the process streams and sets the
 * exit code), without the ~0.5-1 s a `node bin/shadowvault.js` start costs on a loaded 2-core machine.
 *
 * Use it for checks between the steps a test is about (listing points, restoring to compare, verify); keep
 * real spawns where the process is the point: kill -9, exit codes and stdout/stderr of the real launcher,
 * signals, servers, commands that pipe a stream to stdout. Commands read env from `io.env` only, except the
 * pool size (SHADOWVAULT_WORKERS) and the point cache size, which are read from this process's environment.
 * Process-wide state outlives a call: the decoded-blob cache of point images (src/points/cache.ts, used by
 * `files` and `export`, not by `restore`) may answer a later call from memory, so a test that damages a store
 * and expects `files` to notice runs those commands in a child process.
 */
import { Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

class Collect extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** `cliInProcess` with stdout as bytes (`disk cat`). */
export async function cliInProcessBytes(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const stdout = new Collect();
  const stderr = new Collect();
  const code = await main(args, { stdout, stderr, env: { ...process.env, ...env } });
  return { code, stdout: stdout.bytes(), stderr: stderr.bytes().toString() };
}

/** Run `shadowvault ARGS` in this process; env is added to this process's environment, as for a child. */
export async function cliInProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const r = await cliInProcessBytes(args, env);
  return { ...r, stdout: r.stdout.toString() };
}

/** `cliInProcess` of a `--json` command that must succeed: its parsed output. */
export async function cliJsonInProcess<T>(args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const r = await cliInProcess([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} (in process) exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
