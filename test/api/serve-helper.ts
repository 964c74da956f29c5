/** Start `shadowvault serve` as a real process (and run CLI commands) for tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { childEnv, CLI, nodeCommand } from '../helpers/env.js';
import { killOnExit } from '../helpers/exit-guard.js';

export interface Served {
  proc: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Start `shadowvault serve` and resolve once it logs its URL. */
export function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const proc = spawn(...nodeCommand([CLI, 'serve', '--listen', '127.0.0.1:0', ...args]), { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(proc);
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout?.on('data', (c: Buffer) => {
      buf += c.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const obj = JSON.parse(text) as Record<string, unknown>;
          lines.push(obj);
          if (typeof obj.url === 'string' && String(obj.msg).includes('listening')) resolve({ proc, url: obj.url, lines, exited });
        } catch {
          /* not a log line */
        }
      }
    });
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${stderr}`)));
  });
}

export function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(...nodeCommand([CLI, ...args]), { env: childEnv(env) });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}


/** fetch against a served appliance with a bearer token; returns status and parsed JSON (or text). */
export async function api<T = unknown>(s: { url: string }, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const r = await fetch(`${s.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000), // a hung appliance fails the test instead of stalling the suite
  });
  const text = await r.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: r.status, json: json as T };
}
