/** Helpers of the store/sync tests: the CLI in a child process, small generated disks, hashes. */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CliRun } from '../helpers/cli.js';
import { childEnv, CLI, nodeCommand } from '../helpers/env.js';

export type { CliRun };

export function sv(args: string[]): CliRun {
  const r = spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', maxBuffer: 64 << 20, env: childEnv({ SHADOWVAULT_WORKERS: '2' }) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function svAsync(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(...nodeCommand([CLI, ...args]), { env: childEnv({ SHADOWVAULT_WORKERS: '2' }) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function svJson<T>(args: string[]): T {
  const r = sv([...args, '--json']);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface Point {
  id: string;
  kind: string;
  time: string;
  bytesChanged: number;
  bytesRead: number;
  bytesStored: number;
  blocksRepaired: number;
}
