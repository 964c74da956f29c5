/**
 * A real `shadowvault export ... --json` child process for tests: started, awaited until it prints its first
 * JSON line (the `serving` event), killed with SIGKILL in teardown if the test left it running. If it exits
 * before serving, the start fails with its stderr.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import type { Test } from 'tap';
import { CLI, childEnv, nodeCommand } from './env.js';

export interface ExporterChild {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** The first line the exporter printed, parsed (the `serving` event with `uri`, `name`, `address`, ...). */
  serving: Record<string, unknown>;
  /** Everything it wrote to stdout so far (the JSON lines: `serving`, then `stopped` when it stops). */
  stdout(): string;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Resolves with [code, signal] when it exits. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

/** `args` follow `export` (source, --store, --listen/--socket, ...); `--json` is added. */
export async function startExporter(t: Test, args: string[]): Promise<ExporterChild> {
  const child = spawn(...nodeCommand([CLI, 'export', ...args, '--json']), { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let gone = false;
  void exited.then(() => (gone = true));
  while (!out.includes('\n')) {
    if (gone) throw new Error(`exporter exited before serving: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, serving: JSON.parse(out.slice(0, out.indexOf('\n'))) as Record<string, unknown>, stdout: () => out, stderr: () => err, exited };
}
