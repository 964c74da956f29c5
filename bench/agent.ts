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
 * main thread and workers, written when it stops) and logs each backup's window on the profiles' clock (monotonic
 * µs: `agent: window T0 T1`), to cut the samples of one step out of profiles of the whole run.
 * SHADOWVAULT_BENCH_AGENT_THREADS=1 logs each backup's CPU seconds by thread of the appliance (this process) and
 * the agent (/proc/PID/task: main thread, engine thread, pool workers, V8's GC and compiler helpers).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closePool } from '../src/pool/index.js';
import { moveStorage } from '../test/helpers/block-move.js';
import { generateDisk } from './gen-disk.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';
import { changeThroughQemu, childrenCpu, CLK_TCK, compressedSize, procCpu, selfCpu, startAgent, startAppliance, startQemu, stopAgent, stopQemu, until, type BenchAppliance, type Qemu } from './vm-rig.js';

const MiB = 1 << 20;
const CLI = new URL('../../bin/shadowvault.js', import.meta.url).pathname;
const UUID = '5f0c2d7e-9a1b-4c3d-8e2f-6a7b8c9d0e1f';

type ThreadsCpu = Map<string, { name: string; cpu: number }>;

/** CPU seconds of each thread of `pid` so far (/proc/PID/task/TID/stat), by thread id. */
function threadsCpu(pid: number | undefined): ThreadsCpu {
  const m: ThreadsCpu = new Map();
  if (!pid) return m;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(') ') + 2).split(' ');
      m.set(tid, { name: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')), cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK });
    } catch {
      /* the thread ended */
    }
  }
  return m;
}

/** The threads that used CPU between two readings, most first: "name#tid seconds, ...". */
function threadDelta(a: ThreadsCpu, b: ThreadsCpu): string {
  const used = [...b].map(([tid, x]) => [`${x.name}#${tid}`, x.cpu - (a.get(tid)?.cpu ?? 0)] as const).filter(([, d]) => d > 0);
  return used.sort((p, q) => q[1] - p[1]).slice(0, 12).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
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
    let b: BenchAppliance | undefined;
    const startVm = (): Promise<Qemu> => startQemu({ dir, disk, name: 'bench-vm', uuid: UUID, agentQmp: join(dir, 'agent.qmp') });
    try {
      o.log(`agent: generating a ${size / MiB} MiB disk`);
      generateDisk(disk, size, 7);
      spawnSync('sync');
      q = await startVm();
      b = await startAppliance(join(dir, 'appliance'), join(dir, 'restores'));
      const call = b.call;
      const prof = process.env.SHADOWVAULT_BENCH_AGENT_PROF;
      agent = startAgent({ appliance: b.url, pair: await b.pairCode(), dataDir: join(dir, 'agent'), qmp: [join(dir, 'agent.qmp')], stateDir: join(dir, 'agent-state'), pollMs: 5000 }, prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []);
      const a = b.appliance;
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
        const threads = process.env.SHADOWVAULT_BENCH_AGENT_THREADS ? [threadsCpu(process.pid), threadsCpu(agent?.pid)] : undefined;
        const job = await b!.backup(source.id as string);
        const parts = [selfCpu(), procCpu(agent?.pid), procCpu(q?.child.pid)].map((c, i) => (c - parts0[i]!).toFixed(2));
        const rss = vmHwmMiB(agent?.pid);
        peak = Math.max(peak, rss);
        if (process.env.SHADOWVAULT_BENCH_AGENT_PROF) o.log(`agent: window (µs, the profiles' clock) ${t0 / 1000n} ${process.hrtime.bigint() / 1000n}`);
        if (threads) o.log(`agent: CPU s by thread: appliance ${threadDelta(threads[0]!, threadsCpu(process.pid))} | agent ${threadDelta(threads[1]!, threadsCpu(agent?.pid))}`);
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
      q = await startVm();
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
      await stopAgent(agent);
      if (q) await stopQemu(q);
      await b?.close();
      await closePool();
      if (existsSync(dir) && process.env.SHADOWVAULT_BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
    }
  },
};
