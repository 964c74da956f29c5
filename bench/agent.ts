/**
 * Suite `agent`: backups of a RUNNING VM through the host agent on loopback, against local backups of the
 * same data (issue 10, "What it must reach").
 *
 * Set-up: a raw disk (bench/gen-disk.ts: 40% zero, 30% compressible, 30% random; 4 GiB, `--quick` 256 MiB,
 * SHADOWVAULT_BENCH_AGENT_MIB to choose) attached to a QEMU VM (TCG, no OS: the VM runs, the disk is idle),
 * an appliance in this process (its engine in its own thread), a host agent as its own process
 * (HostAgent + QEMU driver + agent methods: build/test/helpers/agent-child.js), and a second store for the
 * local runs (`shadowvault backup` CLI on the same disk file).
 *
 * Rows:
 * - initial backup through the agent; local full backup;
 * - 1% of the blocks rewritten through QEMU (qemu-io, random data) → incremental through the agent (dirty
 *   bitmap) vs local `backup --changed` with the same change list;
 * - QEMU restarted (raw disk: the bitmap is gone), 1% rewritten again → express full at the source (digest
 *   comparison on the agent) vs local digest comparison;
 * - storage live migration (blockdev-mirror to a new file + pivot, same QEMU: test/helpers/block-move.ts), 1%
 *   rewritten again → the point after it (digest comparison at the source, fallback `storage-migrated`);
 * - bytes on the wire (the point's bytesSent) against the compressed size of the changed blocks;
 * - the agent's peak RSS (VmHWM) of each step through the agent (reset before each: /proc/PID/clear_refs 5),
 *   and over all runs;
 * - CPU seconds of each step: through the agent = this process (appliance, engine thread, its pool) + the
 *   agent process + QEMU (/proc/PID/stat); local = the CLI child (cutime + cstime of waited children). The
 *   machine is shared: CPU/local is the steadier ratio, time/local the one the targets name.
 *
 * SHADOWVAULT_BENCH_AGENT_PROF=DIR runs the agent under `node --cpu-prof --cpu-prof-dir=DIR` (profiles of its
 * main thread and workers, written when it stops).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Appliance } from '../src/appliance/appliance.js';
import { makeConfig } from '../src/appliance/config.js';
import { ThreadedEngine } from '../src/appliance/engine/threaded.js';
import type { Job } from '../src/appliance/model.js';
import { buildApp } from '../src/api/app.js';
import { packBlocks } from '../src/native/index.js';
import { closePool } from '../src/pool/index.js';
import { QmpClient } from '../src/qemu/qmp.js';
import { COMPRESSION_LEVEL } from '../storage/layout.js';
import { moveStorage } from '../test/helpers/block-move.js';
import { generateDisk, prng } from './gen-disk.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';

const MiB = 1 << 20;
const BS = 64 * 1024;
const CLI = new URL('../../bin/shadowvault.js', import.meta.url).pathname;
const AGENT_CHILD = new URL('../test/helpers/agent-child.js', import.meta.url).pathname;
/** Linux clock ticks per second (USER_HZ) of /proc/PID/stat times. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const UUID = '5f0c2d7e-9a1b-4c3d-8e2f-6a7b8c9d0e1f';

interface Qemu { child: ChildProcess; qmp: QmpClient }

async function startQemu(dir: string, disk: string): Promise<Qemu> {
  const mon = join(dir, 'bench.qmp');
  const agentQmp = join(dir, 'agent.qmp');
  for (const s of [mon, agentQmp]) rmSync(s, { force: true });
  const child = spawn('qemu-system-x86_64', [
    '-machine', 'q35,accel=tcg', '-m', '64', '-display', 'none', '-nodefaults', '-monitor', 'none', '-serial', 'none', '-name', 'bench-vm', '-uuid', UUID,
    '-qmp', `unix:${mon},server=on,wait=off`, '-qmp', `unix:${agentQmp},server=on,wait=off`,
    '-blockdev', JSON.stringify({ driver: 'file', filename: disk, 'node-name': 'file0' }),
    '-blockdev', JSON.stringify({ driver: 'raw', file: 'file0', 'node-name': 'disk0' }),
    '-device', 'virtio-blk-pci,drive=disk0,id=vblk0',
  ], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try {
      return { child, qmp: await QmpClient.connect(mon, { connectTimeoutMs: 2000 }) };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('QEMU did not start (is qemu-system-x86 installed?)');
}

async function stopQemu(q: Qemu): Promise<void> {
  await q.qmp.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => undefined);
  q.qmp.close();
  await new Promise<void>((r) => (q.child.exitCode !== null ? r() : q.child.once('exit', () => r())));
}

/** Rewrite `percent`% of the blocks through QEMU with random data (16 source files in turn); returns the change list. */
async function changeThroughQemu(q: Qemu, dir: string, size: number, percent: number, seed: number): Promise<Array<[number, number]>> {
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

function compressedSize(path: string, changes: Array<[number, number]>): number {
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

/**
 * Run the CLI with --json; asynchronous, so that the appliance in this process keeps answering the agent's
 * keepalive meanwhile (a blocked event loop made the agent drop its channel during long local runs).
 */
async function cli(args: string[]): Promise<{ seconds: number; cpu: number; json: Record<string, unknown> }> {
  const t0 = process.hrtime.bigint();
  const c0 = childrenCpu();
  const child = spawn(process.execPath, [CLI, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`shadowvault ${args.join(' ')}: ${stderr}`);
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: childrenCpu() - c0, json: JSON.parse(stdout) as Record<string, unknown> };
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat. */
function procCpu(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14-15 (utime, stime) after the comm field
  } catch {
    return 0;
  }
}

/** CPU seconds of this process's waited-for children (cutime + cstime: the local CLI runs). */
function childrenCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Reset the peak RSS (VmHWM) of `pid` to its current RSS (Linux clear_refs 5); false when not allowed. */
function resetHwm(pid: number | undefined): boolean {
  try {
    if (pid) writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return pid !== undefined;
  } catch {
    return false;
  }
}

function vmHwmMiB(pid: number | undefined): number {
  if (!pid) return NaN;
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function until(what: string, f: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const agentSuite: Suite = {
  name: 'agent',
  description: 'Running VM through the host agent on loopback vs local backups: incremental (bitmap), express full at the source, bytes on the wire, agent RSS',
  async run(o: BenchOptions): Promise<SuiteResult> {
    const dir = mkdtempSync(join(process.env.SHADOWVAULT_BENCH_TMP || tmpdir(), 'sv-bench-agent-'));
    const size = (o.quick ? 256 : Number(process.env.SHADOWVAULT_BENCH_AGENT_MIB ?? 4096)) * MiB;
    const disk = join(dir, 'vm', 'disk.raw');
    mkdirSync(join(dir, 'vm'));
    let q: Qemu | undefined;
    let agent: ChildProcess | undefined;
    let appliance: Appliance | undefined;
    let app: Awaited<ReturnType<typeof buildApp>> | undefined;
    try {
      o.log(`agent: generating a ${size / MiB} MiB disk`);
      generateDisk(disk, size, 7);
      spawnSync('sync');
      q = await startQemu(dir, disk);
      const dataDir = join(dir, 'appliance');
      const config = makeConfig({ dataDir, restoreRoots: [join(dir, 'restores')], sourceRoots: [], gcAt: ['never'], verifyAt: ['never'] }, {});
      appliance = await Appliance.open(config, { logger: pino({ level: 'silent' }), schedulerIntervalMs: 0, engine: new ThreadedEngine(join(dataDir, 'store')) });
      app = await buildApp(appliance, { logger: pino({ level: 'silent' }) });
      appliance.start();
      await app.listen({ host: '127.0.0.1', port: 0 });
      const addr = app.server.address();
      const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
      const admin = (await appliance.tokens.create('bench', 'admin')).token;
      const call = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> => {
        const r = await app!.inject({ method, url: path, headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) }, payload: body ? JSON.stringify(body) : undefined });
        if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${r.body}`);
        return r.json() as Record<string, unknown>;
      };
      const code = (await call('POST', '/api/v1/agents/pairing', {})).code as string;
      agent = spawn(process.execPath, [...(process.env.SHADOWVAULT_BENCH_AGENT_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SHADOWVAULT_BENCH_AGENT_PROF}`] : []), AGENT_CHILD, JSON.stringify({ appliance: url, pair: code, dataDir: join(dir, 'agent'), qmp: [join(dir, 'agent.qmp')], stateDir: join(dir, 'agent-state'), restoreRoots: [], pollMs: 5000 })], { stdio: ['ignore', 'pipe', 'inherit'] });
      const a = appliance;
      await until('the VM in the inventory', () => a.agents.vms().some((v) => v.id === UUID && v.hostConnected));
      const source = await call('POST', '/api/v1/sources', { vm: 'bench-vm' });
      // CPU of a backup through the agent: this process (appliance, engine thread, its pool) + the agent
      // process (its pool) + QEMU (the NBD server of the view).
      const allCpu = (): number => selfCpu() + procCpu(agent?.pid) + procCpu(q?.child.pid);
      let peak = 0; // the agent's peak RSS over all steps (VmHWM is reset before each backup)
      const backup = async (): Promise<{ seconds: number; cpu: number; rss: number; point: Record<string, unknown> }> => {
        peak = Math.max(peak, vmHwmMiB(agent?.pid));
        resetHwm(agent?.pid);
        const t0 = process.hrtime.bigint();
        const c0 = allCpu();
        const parts0 = [selfCpu(), procCpu(agent?.pid), procCpu(q?.child.pid)];
        const job = await a.queue.waitFor(((await call('POST', '/api/v1/jobs', { kind: 'backup', sourceId: source.id })) as unknown as Job).id);
        if (job.state !== 'succeeded') throw new Error(`backup through the agent: ${JSON.stringify(job.error)}`);
        const parts = [selfCpu(), procCpu(agent?.pid), procCpu(q?.child.pid)].map((c, i) => (c - parts0[i]!).toFixed(2));
        const rss = vmHwmMiB(agent?.pid);
        peak = Math.max(peak, rss);
        o.log(`agent: CPU s appliance ${parts[0]}, agent ${parts[1]}, QEMU ${parts[2]}; agent peak RSS ${Math.round(rss)} MiB`);
        return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: allCpu() - c0, rss, point: job.result ?? {} };
      };
      const cpuCols = (x: { cpu: number; rss?: number }, local?: { cpu: number }): BenchRow => ({
        'CPU s': Number(x.cpu.toFixed(2)), ...(local ? { 'CPU/local': Number((x.cpu / local.cpu).toFixed(2)) } : {}), ...(x.rss !== undefined ? { 'peak RSS MiB': Math.round(x.rss) } : {}),
      });
      const rows: BenchRow[] = [];
      const sent = (p: Record<string, unknown>): number => Number(p.bytesSent ?? NaN);
      const localStore = join(dir, 'local-store');

      o.log('agent: initial backup through the agent');
      const init = await backup();
      rows.push({ step: 'initial backup through the agent', MB: Math.round(size / 1e6), seconds: Number(init.seconds.toFixed(2)), ...cpuCols(init), 'wire MB': Number((sent(init.point) / 1e6).toFixed(2)) });
      o.log('agent: local full backup');
      const lf = await cli(['backup', disk, '--store', localStore, '--source', 'vm']);
      rows.push({ step: 'local full backup (same disk)', MB: Math.round(size / 1e6), seconds: Number(lf.seconds.toFixed(2)), ...cpuCols(lf) });

      o.log('agent: 1% changed through QEMU');
      const dayA = await changeThroughQemu(q, dir, size, 1, 11);
      writeFileSync(join(dir, 'dayA.json'), JSON.stringify(dayA));
      const compA = compressedSize(disk, dayA);
      const incA = await backup();
      const locA = await cli(['backup', disk, '--store', localStore, '--source', 'vm', '--changed', join(dir, 'dayA.json')]);
      rows.push({ step: `incremental through the agent (bitmap, ${dayA.length} blocks)`, MB: Math.round(size / 1e6), seconds: Number(incA.seconds.toFixed(2)), 'wire MB': Number((sent(incA.point) / 1e6).toFixed(2)), 'compressed changed MB': Number((compA / 1e6).toFixed(2)), 'wire/compressed': Number((sent(incA.point) / compA).toFixed(3)), 'time/local': Number((incA.seconds / locA.seconds).toFixed(2)), ...cpuCols(incA, locA) });
      rows.push({ step: 'local backup --changed (same change list)', MB: Math.round(size / 1e6), seconds: Number(locA.seconds.toFixed(2)), ...cpuCols(locA) });

      o.log('agent: QEMU restarted (bitmap lost), 1% changed again');
      await stopQemu(q);
      q = await startQemu(dir, disk);
      await until('the restarted VM in the inventory', () => a.agents.vms().some((v) => v.id === UUID && v.hostConnected && v.state === 'running'));
      const dayB = await changeThroughQemu(q, dir, size, 1, 12);
      const compB = compressedSize(disk, dayB);
      const expB = await backup();
      const locB = await cli(['backup', disk, '--store', localStore, '--source', 'vm']);
      const tr = ((expB.point.disks as Array<Record<string, unknown>> | undefined)?.[0]?.tracking ?? {}) as { method?: string };
      rows.push({ step: `express full at the source (${tr.method ?? '?'}, ${dayB.length} blocks changed)`, MB: Math.round(size / 1e6), seconds: Number(expB.seconds.toFixed(2)), 'wire MB': Number((sent(expB.point) / 1e6).toFixed(2)), 'compressed changed MB': Number((compB / 1e6).toFixed(2)), 'wire/compressed': Number((sent(expB.point) / compB).toFixed(3)), 'time/local': Number((expB.seconds / locB.seconds).toFixed(2)), ...cpuCols(expB, locB) });
      rows.push({ step: 'local digest comparison backup', MB: Math.round(size / 1e6), seconds: Number(locB.seconds.toFixed(2)), ...cpuCols(locB) });

      o.log('agent: storage live migration (mirror to a new file + pivot, same QEMU), 1% changed again');
      const moved = join(dir, 'vm', 'disk-moved.raw');
      const m0 = process.hrtime.bigint();
      await moveStorage(q.qmp, disk, moved, 'bench');
      o.log(`agent: storage moved in ${(Number(process.hrtime.bigint() - m0) / 1e9).toFixed(1)} s`);
      const dayC = await changeThroughQemu(q, dir, size, 1, 13);
      const compC = compressedSize(moved, dayC);
      const smC = await backup();
      const trC = ((smC.point.disks as Array<Record<string, unknown>> | undefined)?.[0]?.tracking ?? {}) as { method?: string; fallback?: string };
      rows.push({ step: `after storage migration (${trC.method ?? '?'}, ${trC.fallback ?? 'no fallback'}, ${dayC.length} blocks changed)`, MB: Math.round(size / 1e6), seconds: Number(smC.seconds.toFixed(2)), 'wire MB': Number((sent(smC.point) / 1e6).toFixed(2)), 'compressed changed MB': Number((compC / 1e6).toFixed(2)), 'wire/compressed': Number((sent(smC.point) / compC).toFixed(3)), ...cpuCols(smC) });
      rows.push({ step: 'agent peak RSS (VmHWM, MiB)', 'peak RSS MiB': Math.round(Math.max(peak, vmHwmMiB(agent.pid))) });
      return {
        columns: ['step', 'MB', 'seconds', 'CPU s', 'wire MB', 'compressed changed MB', 'wire/compressed', 'time/local', 'CPU/local', 'peak RSS MiB'],
        rows,
        notes: [
          `disk ${size / MiB} MiB raw, QEMU TCG, agent and appliance on loopback (plain http), 64 KiB blocks; changes: random data written through QEMU (qemu-io)`,
          'wire = the point\'s bytesSent: JSON headers + payloads of every agent call both ways (incl. the old digests sent for the digest comparison)',
          'targets: incremental time <= 1.5x local --changed, wire <= 1.1x compressed changed; express full wire <= 1.1x, time <= 1.5x local digest comparison; agent RSS <= 256 MiB; after storage migration (issue 11) wire <= 1.1x compressed changed',
        ],
      };
    } finally {
      if (agent && agent.exitCode === null) {
        agent.kill('SIGTERM');
        await new Promise((r) => agent!.once('exit', r));
      }
      if (q) await stopQemu(q);
      await app?.close();
      await appliance?.stop();
      await closePool();
      if (existsSync(dir) && process.env.SHADOWVAULT_BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
    }
  },
};
