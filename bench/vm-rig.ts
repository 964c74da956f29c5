/**
 * What the VM benchmark suites (agent.ts, cluster.ts) share: an appliance in this process (its engine in its
 * own thread, the admin API on loopback), host agents as child processes (test/helpers/agent-child.js: the
 * real HostAgent + QEMU driver), QEMU VMs on TCG with no OS (the VM runs, its disk is idle unless written
 * through qemu-io), changes written through QEMU, the compressed size of changed blocks, and CPU seconds and
 * peak RSS per process from /proc.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Appliance } from '../src/appliance/appliance.js';
import { makeConfig, type Limits } from '../src/appliance/config.js';
import { ThreadedEngine } from '../src/appliance/engine/threaded.js';
import type { Job } from '../src/appliance/model.js';
import { buildApp } from '../src/api/app.js';
import { packBlocks } from '../src/native/index.js';
import { QmpClient } from '../src/qemu/qmp.js';
import { COMPRESSION_LEVEL } from '../storage/layout.js';
import { prng } from './gen-disk.js';

export const BS = 64 * 1024;
const AGENT_CHILD = new URL('../test/helpers/agent-child.js', import.meta.url).pathname;
/** Linux clock ticks per second (USER_HZ) of /proc/PID/stat times. */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export interface Qemu { child: ChildProcess; qmp: QmpClient }

export interface QemuOptions {
  /** The bench's own QMP socket goes here (`<name>.bench.qmp`). */
  readonly dir: string;
  readonly disk: string;
  readonly name: string;
  readonly uuid: string;
  /** The agent's QMP socket (matched by its --qmp glob). */
  readonly agentQmp: string;
  /** Start as a live migration's destination (`-incoming defer`). */
  readonly incoming?: boolean;
}

/** A QEMU VM (TCG, 64 MiB, no OS) with one raw virtio disk (node names file0/disk0, device vblk0). */
export async function startQemu(o: QemuOptions): Promise<Qemu> {
  const mon = join(o.dir, `${o.name}.bench.qmp`);
  for (const s of [mon, o.agentQmp]) rmSync(s, { force: true });
  const child = spawn('qemu-system-x86_64', [
    '-machine', 'q35,accel=tcg', '-m', '64', '-display', 'none', '-nodefaults', '-monitor', 'none', '-serial', 'none', '-name', o.name, '-uuid', o.uuid,
    '-qmp', `unix:${mon},server=on,wait=off`, '-qmp', `unix:${o.agentQmp},server=on,wait=off`,
    '-blockdev', JSON.stringify({ driver: 'file', filename: o.disk, 'node-name': 'file0' }),
    '-blockdev', JSON.stringify({ driver: 'raw', file: 'file0', 'node-name': 'disk0' }),
    '-device', 'virtio-blk-pci,drive=disk0,id=vblk0',
    ...(o.incoming ? ['-incoming', 'defer'] : []),
  ], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try {
      return { child, qmp: await QmpClient.connect(mon, { connectTimeoutMs: 2000 }) };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('QEMU did not start (is qemu-system-x86 installed? apt-get install qemu-system-x86)');
}

export async function stopQemu(q: Qemu): Promise<void> {
  await q.qmp.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => undefined);
  q.qmp.close();
  await new Promise<void>((r) => (q.child.exitCode !== null ? r() : q.child.once('exit', () => r())));
}

/** Rewrite `percent`% of the blocks through QEMU with random data (16 source files in turn); returns the change list. */
export async function changeThroughQemu(q: Qemu, dir: string, size: number, percent: number, seed: number): Promise<Array<[number, number]>> {
  const rand = prng(seed);
  const blocks = Math.floor(size / BS);
  const chosen = new Set<number>();
  while (chosen.size < Math.max(1, Math.round((blocks * percent) / 100))) chosen.add(Math.floor(rand() * blocks));
  const files = Array.from({ length: 16 }, (_, i) => {
    const f = join(dir, `chunk-${seed}-${i}.bin`);
    writeFileSync(f, randomFillSync(Buffer.alloc(BS)));
    return f;
  });
  const list = [...chosen].sort((a, b) => a - b);
  for (const [i, b] of list.entries()) {
    await q.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -s ${files[i % files.length]} ${b * BS} ${BS}"` });
  }
  await q.qmp.execute('human-monitor-command', { 'command-line': 'qemu-io -d /machine/peripheral/vblk0/virtio-backend "flush"' });
  return list.map((b) => [b * BS, BS]);
}

/** The size zstd gives the blocks at `changes` of `path` (as the store packs them). */
export function compressedSize(path: string, changes: ReadonlyArray<readonly [number, number]>): number {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(BS);
  let n = 0;
  try {
    for (const [off, len] of changes) {
      readSync(fd, buf, 0, len, off);
      n += packBlocks(buf.subarray(0, len), BS, COMPRESSION_LEVEL).payload.length;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat. */
export function procCpu(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14-15 (utime, stime) after the comm field
  } catch {
    return 0;
  }
}

/** CPU seconds of this process's waited-for children (cutime + cstime: the local CLI runs). */
export function childrenCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

export function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export async function until(what: string, f: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface BenchAppliance {
  readonly appliance: Appliance;
  readonly url: string;
  /** An admin call through the API (fastify inject); throws on a status >= 300. */
  call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>>;
  /** Start a backup job through the API (as `shadowvault backup --source` does) and wait for it; throws unless it succeeded. */
  backup(sourceId: string): Promise<Job>;
  /** A pairing code for one more agent. */
  pairCode(): Promise<string>;
  close(): Promise<void>;
}

/** An appliance in this process: its store and state under `dataDir`, the API listening on loopback. */
export async function startAppliance(dataDir: string, restores: string, limits: Partial<Limits> = {}): Promise<BenchAppliance> {
  const config = makeConfig({ dataDir, restoreRoots: [restores], sourceRoots: [], gcAt: ['never'], verifyAt: ['never'], limits }, {});
  const appliance = await Appliance.open(config, { logger: pino({ level: 'silent' }), schedulerIntervalMs: 0, engine: new ThreadedEngine(join(dataDir, 'store')) });
  const app = await buildApp(appliance, { logger: pino({ level: 'silent' }) });
  appliance.start();
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const admin = (await appliance.tokens.create('bench', 'admin')).token;
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const r = await app.inject({ method, url: path, headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) }, payload: body ? JSON.stringify(body) : undefined });
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${r.body}`);
    return r.json() as Record<string, unknown>;
  };
  return {
    appliance, url, call,
    async backup(sourceId) {
      const job = await appliance.queue.waitFor(((await call('POST', '/api/v1/jobs', { kind: 'backup', sourceId })) as unknown as Job).id);
      if (job.state !== 'succeeded') throw new Error(`backup of ${sourceId}: ${job.state} ${JSON.stringify(job.error)}`);
      return job;
    },
    pairCode: async () => (await call('POST', '/api/v1/agents/pairing', {})).code as string,
    async close() {
      await app.close();
      await appliance.stop();
    },
  };
}

export interface AgentChildOptions {
  readonly appliance: string;
  readonly pair: string;
  readonly dataDir: string;
  readonly qmp: readonly string[];
  readonly stateDir: string;
  readonly name?: string;
  readonly cluster?: string;
  readonly pollMs?: number;
}

/** A host agent as its own process; `nodeArgs` go before the script (e.g. --cpu-prof). */
export function startAgent(o: AgentChildOptions, nodeArgs: readonly string[] = []): ChildProcess {
  return spawn(process.execPath, [...nodeArgs, AGENT_CHILD, JSON.stringify({ restoreRoots: [], ...o })], { stdio: ['ignore', 'pipe', 'inherit'] });
}

export async function stopAgent(agent: ChildProcess | undefined): Promise<void> {
  if (!agent || agent.exitCode !== null || agent.signalCode !== null) return;
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
}
