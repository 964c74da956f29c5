/**
 * The end-to-end rig of the VM-source tests: a real appliance (in this process, listening on loopback, its
 * engine in its own thread), a real host agent as a child process (test/helpers/agent-child.ts: it can be
 * killed with SIGKILL), a TCP proxy between them (to cut the connection mid-transfer), and helpers to run
 * jobs and read points back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Limits } from '../../src/appliance/config.js';
import type { Job } from '../../src/appliance/model.js';
import { ThreadedEngine } from '../../src/appliance/engine/threaded.js';
import { REPO_ROOT, tempDir } from '../helpers/env.js';
import { killOnExit } from '../helpers/exit-guard.js';
import { startTestAppliance, type TestAppliance } from '../api/helpers.js';
import { until } from './helpers.js';

interface T {
  teardown(fn: () => void | Promise<void>): void;
}

/** A TCP proxy to `port` on loopback; `cut()` destroys every connection through it (new ones are accepted). */
export async function tcpProxy(t: T, port: number): Promise<{ port: number; cut(): void; connections(): number }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    cut: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    connections: () => sockets.size / 2,
  };
}

export interface AgentProcess {
  readonly child: ChildProcess;
  /** Resolves when the agent printed `connected` (again, after `since`). */
  connected(): Promise<void>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export interface AgentChildOptions {
  appliance: string;
  pair?: string;
  dataDir: string;
  qmp: string[];
  stateDir: string;
  restoreRoots: string[];
  idleMs?: number;
  name?: string;
  cluster?: string;
  /** `--replica` specs (test/helpers/agent-child.ts). */
  replicas?: string[];
  smbShares?: string[];
  smbCredentials?: string;
  served?: Record<string, string>;
}

export function startAgentChild(t: T, o: AgentChildOptions): AgentProcess {
  const script = join(REPO_ROOT, 'build', 'test', 'helpers', 'agent-child.js');
  const child = spawn(process.execPath, [script, JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(child);
  let stderr = '';
  let connects = 0;
  let seen = 0;
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (d: Buffer) => {
    connects += d.toString().split('\n').filter((l) => l === 'connected').length;
    while (waiters.length && seen < connects) {
      seen++;
      waiters.shift()!();
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let done = false;
  let exitInfo = '';
  child.once('exit', (code, signal) => {
    done = true;
    exitInfo = `exit code ${String(code)}, signal ${String(signal)}`;
  });
  const stop = async (): Promise<void> => {
    if (done) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);
  return {
    child,
    connected: () => new Promise<void>((resolve, reject) => {
      if (done) {
        reject(new Error(`agent is not running (${exitInfo}); stderr: ${stderr}`));
        return;
      }
      if (seen < connects) {
        seen++;
        resolve();
        return;
      }
      const timer = setTimeout(() => reject(new Error(`agent did not connect within 30 s; stderr: ${stderr}`)), 30_000);
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`agent exited (${String(code)}): ${stderr}`)));
    }),
    kill9: async () => {
      if (done) return;
      child.kill('SIGKILL');
      await exited;
    },
    stop,
  };
}

export interface Rig {
  readonly a: TestAppliance;
  readonly url: string;
  readonly dir: string;
  readonly storeDir: string;
  pairCode(): Promise<string>;
  job(body: Record<string, unknown>): Promise<Job>;
  /** Start a job, do not wait. */
  start(body: Record<string, unknown>): Promise<Job>;
  waitVm(id: string): Promise<void>;
}

export async function startRig(t: T, opts: { limits?: Partial<Limits>; name?: string } = {}): Promise<Rig> {
  const dir = tempDir(t, 'sv-vm-e2e-');
  const storeDir = join(dir, 'data', 'store');
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), deps: { agentKeepaliveMs: 10_000, engine: new ThreadedEngine(storeDir) }, ...(opts.limits ? { limits: opts.limits } : {}), ...(opts.name ? { name: opts.name } : {}) });
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = a.app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const start = async (body: Record<string, unknown>): Promise<Job> => {
    const r = await a.call('operator', 'POST', '/api/v1/jobs', body);
    if (r.statusCode !== 202) throw new Error(`start job: ${r.statusCode} ${r.body}`);
    return r.json() as Job;
  };
  return {
    a, url, dir, storeDir,
    pairCode: async () => (await a.call('admin', 'POST', '/api/v1/agents/pairing', {})).json().code as string,
    start,
    job: async (body) => a.appliance.queue.waitFor((await start(body)).id),
    waitVm: async (id) => {
      await until(`VM ${id} in the inventory`, () => (a.appliance.agents.vms().some((v) => v.id === id && v.hostConnected) ? true : undefined), 30_000);
    },
  };
}

/**
 * Start a backup of `sourceId` and wait, while it runs, for `moment` (the state a kill round acts at: a checkpoint
 * on the share, a fenced replica...). A backup that ended before the moment was seen (an incremental can finish
 * first) is noted and started again, up to `attempts` times. The job's id at the moment, or undefined when every
 * attempt ended first.
 */
export async function backupAtMoment(t: { comment(msg: string): void }, rig: Rig, sourceId: string, what: string, moment: () => boolean | Promise<boolean>, attempts = 4): Promise<string | undefined> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const job = await rig.start({ kind: 'backup', sourceId });
    const seen = await until(`${what}, or its backup done`, async () => {
      if (await moment()) return 'seen';
      const state = rig.a.appliance.queue.get(job.id)?.state;
      return state === 'queued' || state === 'running' ? undefined : 'done';
    }, 60_000);
    if (seen === 'seen') return job.id;
    const j = rig.a.appliance.queue.get(job.id);
    t.comment(`attempt ${attempt}: the backup ended (${j?.state}${j?.error ? ` ${j.error.code}` : ''}) before ${what}`);
  }
  return undefined;
}
