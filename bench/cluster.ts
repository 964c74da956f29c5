/**
 * Suite `cluster`: issue 11's two cluster rows, with real processes on loopback (bench/vm-rig.ts): one
 * appliance in this process, two host agents as child processes (node-a and node-b of cluster c1, each with
 * its own QMP folder), QEMU VMs (TCG, no OS, idle raw disks from bench/gen-disk.ts) whose disks lie in one
 * folder both nodes see at the same path (the cluster shared volume). Every backup is a job started through
 * the admin API (`POST /api/v1/jobs`, what `shadowvault backup --source` sends) and dispatched by the
 * appliance's queue within its limits.
 *
 * Part `migration` (4 GiB disk, `--quick` 256 MiB, SHADOWVAULT_BENCH_CLUSTER_MIB): after an initial full on
 * node-a, pairs of incrementals with 1% of the blocks rewritten through QEMU:
 * - the same incremental without a migration (on the node that runs the VM);
 * - after an in-cluster live migration to the other node (destination QEMU `-incoming defer` on the same
 *   disk file, `migrate` over a unix socket once that node's agent saw the VM arriving, the source quit),
 *   half of the changes written before the migration and half after; the incremental through the node that
 *   now runs the VM.
 *   Two pairs: a → b, then b → a. Wire = the point's bytesSent against the zstd size of the changed blocks;
 *   time against the incremental without a migration.
 *
 * Part `throughput` (8 VMs of 256 MiB, `--quick` 32, SHADOWVAULT_BENCH_CLUSTER_VM_MIB; four on each node;
 * limits: 8 jobs, 4 per node, 8 per cluster): the same backups one after another (the next job started when
 * the last one ended) against all at once (eight jobs started together), interleaved:
 * - fulls: four VMs one after another, the four others at once (distinct data, the same sizes);
 * - incremental rounds (1% of each VM rewritten before each round): serial, parallel, serial, parallel.
 * CPU seconds per process (this process = appliance + engine thread + its pool; each agent; all QEMUs)
 * tell what bounds the parallel runs on this machine's cores.
 *
 * SHADOWVAULT_BENCH_CLUSTER_PARTS=migration|throughput runs one part only; SHADOWVAULT_BENCH_CLUSTER_ROUNDS sets
 * the count of incremental rounds (default 4), SHADOWVAULT_BENCH_CLUSTER_PCT the percent changed (default 1);
 * SHADOWVAULT_BENCH_CLUSTER_JOBLOG=1 prints each incremental job's timeline (ms from its creation) on stderr.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterView } from '../src/appliance/agents/clusters.js';
import type { Job } from '../src/appliance/model.js';
import { closePool } from '../src/pool/index.js';
import { queryStatus } from '../src/qemu/qmp-commands.js';
import { generateDisk } from './gen-disk.js';
import type { BenchOptions, BenchRow, Suite, SuiteResult } from './types.js';
import { BS, changeThroughQemu, compressedSize, procCpu, selfCpu, startAgent, startAppliance, startQemu, stopAgent, stopQemu, until, type BenchAppliance, type Qemu } from './vm-rig.js';

const MiB = 1 << 20;
const CLUSTER = 'c1';
type NodeName = 'node-a' | 'node-b';
const NODES: readonly NodeName[] = ['node-a', 'node-b'];
const other = (n: NodeName): NodeName => (n === 'node-a' ? 'node-b' : 'node-a');

interface BenchVm {
  readonly name: string;
  readonly uuid: string;
  readonly disk: string;
  readonly size: number;
  node: NodeName;
  qemu: Qemu;
  sourceId: string;
  migrations: number;
}

interface Rig {
  readonly dir: string;
  readonly b: BenchAppliance;
  readonly agents: Record<NodeName, ChildProcess>;
  readonly vms: BenchVm[];
  qmpDir(n: NodeName): string;
  /** CPU seconds so far: this process, each agent, all QEMUs. */
  cpu(): { appliance: number; 'node-a': number; 'node-b': number; qemu: number };
}

const uuidOf = (i: number): string => `8e2a4c10-0000-4000-8000-${String(i).padStart(12, '0')}`;

async function startRig(dir: string, limits: { maxConcurrentJobs: number; maxJobsPerHost: number; maxJobsPerCluster: number }): Promise<Rig> {
  const b = await startAppliance(join(dir, 'appliance'), join(dir, 'restores'), limits);
  const qmpDir = (n: NodeName): string => join(dir, n, 'qmp');
  const agents = {} as Record<NodeName, ChildProcess>;
  for (const n of NODES) {
    mkdirSync(qmpDir(n), { recursive: true });
    // the agent's own inventory poll (5 s), not the tests' 300 ms: its CPU counts in the throughput row
    agents[n] = startAgent({ appliance: b.url, pair: await b.pairCode(), name: n, cluster: CLUSTER, dataDir: join(dir, n, 'agent'), qmp: [join(qmpDir(n), '*.qmp')], stateDir: join(dir, n, 'state'), pollMs: 5000 });
  }
  await until('both agents connected', () => b.appliance.agents.registry.list().filter((a) => NODES.includes(a.name as NodeName)).length === 2, 60_000);
  const vms: BenchVm[] = [];
  return {
    dir, b, agents, vms, qmpDir,
    cpu: () => ({ appliance: selfCpu(), 'node-a': procCpu(agents['node-a'].pid), 'node-b': procCpu(agents['node-b'].pid), qemu: vms.reduce((s, v) => s + procCpu(v.qemu.child.pid), 0) }),
  };
}

function hostIdOf(r: Rig, n: NodeName): string | undefined {
  return r.b.appliance.agents.registry.list().find((a) => a.name === n)?.id;
}

function seenOn(r: Rig, vm: { uuid: string }, n: NodeName): ReturnType<BenchAppliance['appliance']['agents']['vms']>[number] | undefined {
  const id = hostIdOf(r, n);
  return r.b.appliance.agents.vms().find((v) => v.id === vm.uuid && v.hostId === id && v.hostConnected);
}

async function runsOn(r: Rig, vm: BenchVm): Promise<string | undefined> {
  const c = ((await r.b.call('GET', '/api/v1/clusters')) as unknown as ClusterView[]).find((x) => x.name === CLUSTER);
  return c?.vms.find((v) => v.id === vm.uuid)?.runsOn?.host;
}

/** Generate the disk in the shared folder, start its QEMU on `node`, wait for the appliance to see it, protect it. */
async function addVm(r: Rig, o: { name: string; index: number; node: NodeName; size: number; seed: number }): Promise<BenchVm> {
  const disk = join(r.dir, 'csv', `${o.name}.raw`);
  mkdirSync(join(r.dir, 'csv'), { recursive: true });
  generateDisk(disk, o.size, o.seed);
  const uuid = uuidOf(o.index);
  const qemu = await startQemu({ dir: join(r.dir, o.node), disk, name: o.name, uuid, agentQmp: join(r.qmpDir(o.node), `${o.name}.qmp`) });
  const vm: BenchVm = { name: o.name, uuid, disk, size: o.size, node: o.node, qemu, sourceId: '', migrations: 0 };
  r.vms.push(vm);
  await until(`${o.name} on ${o.node}`, () => seenOn(r, vm, o.node)?.state === 'running', 60_000);
  vm.sourceId = (await r.b.call('POST', '/api/v1/sources', { vm: uuid, name: o.name })).id as string;
  return vm;
}

/**
 * Live-migrate `vm` to the other node as a cluster manager does (shared disk): destination QEMU with
 * `-incoming defer`, wait until that node's agent reports it arriving (it turns `dirty-bitmaps` on then),
 * `migrate` over a unix socket, wait for completion and the destination running, quit the source, and wait
 * until the appliance places the VM on the new node. Returns the migration's own seconds (QEMU's total-time).
 */
async function migrate(r: Rig, vm: BenchVm): Promise<number> {
  const to = other(vm.node);
  const next = await startQemu({ dir: join(r.dir, to), disk: vm.disk, name: vm.name, uuid: vm.uuid, agentQmp: join(r.qmpDir(to), `${vm.name}.qmp`), incoming: true });
  await until(`${vm.name} arriving on ${to}`, () => seenOn(r, vm, to)?.migration === 'incoming', 60_000);
  const sock = join(r.dir, `mig-${vm.name}-${vm.migrations++}.sock`);
  await next.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
  await vm.qemu.qmp.execute('migrate', { uri: `unix:${sock}` });
  let took = NaN;
  await until(`migration of ${vm.name}`, async () => {
    const m = await vm.qemu.qmp.execute<{ status?: string; 'error-desc'?: string; 'total-time'?: number }>('query-migrate');
    if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`migration of ${vm.name} ${m.status}: ${m['error-desc'] ?? ''}`);
    took = (m['total-time'] ?? NaN) / 1000;
    return m.status === 'completed';
  }, 120_000);
  await until(`${vm.name} running on ${to}`, async () => (await queryStatus(next.qmp)).status === 'running', 30_000);
  await stopQemu(vm.qemu);
  vm.qemu = next;
  vm.node = to;
  await until(`${vm.name} placed on ${to}`, async () => (await runsOn(r, vm)) === to, 60_000);
  return took;
}

interface Timed { seconds: number; cpu: ReturnType<Rig['cpu']>; jobs: Job[] }

function cpuDelta(a: ReturnType<Rig['cpu']>, b: ReturnType<Rig['cpu']>): ReturnType<Rig['cpu']> {
  return { appliance: b.appliance - a.appliance, 'node-a': b['node-a'] - a['node-a'], 'node-b': b['node-b'] - a['node-b'], qemu: b.qemu - a.qemu };
}

/** Back up `vms` one after another (each job started when the last ended) or all at once (jobs started together). */
async function backups(r: Rig, vms: readonly BenchVm[], parallel: boolean): Promise<Timed> {
  const c0 = r.cpu();
  const t0 = process.hrtime.bigint();
  const jobs: Job[] = [];
  if (parallel) {
    jobs.push(...(await Promise.all(vms.map((vm) => r.b.backup(vm.sourceId)))));
  } else {
    for (const vm of vms) jobs.push(await r.b.backup(vm.sourceId));
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuDelta(c0, r.cpu()), jobs };
}

const f2 = (x: number): number => Number(x.toFixed(2));
const total = (c: ReturnType<Rig['cpu']>): number => c.appliance + c['node-a'] + c['node-b'] + c.qemu;
const cpuCols = (c: ReturnType<Rig['cpu']>): BenchRow => ({ 'CPU s': f2(total(c)), 'CPU appliance': f2(c.appliance), 'CPU node-a': f2(c['node-a']), 'CPU node-b': f2(c['node-b']), 'CPU QEMU': f2(c.qemu) });
const pointOf = (j: Job): Record<string, unknown> => j.result ?? {};
const sent = (j: Job): number => Number(pointOf(j).bytesSent ?? NaN);
const tracking = (j: Job): string => {
  const t = ((pointOf(j).disks as Array<Record<string, unknown>> | undefined)?.[0]?.tracking ?? {}) as { method?: string; fallback?: string };
  return `${t.method ?? '?'}${t.fallback ? `, ${t.fallback}` : ''}`;
};

async function migrationPart(o: BenchOptions, dir: string, rows: BenchRow[], notes: string[]): Promise<void> {
  const size = (o.quick ? 256 : Number(process.env.SHADOWVAULT_BENCH_CLUSTER_MIB ?? 4096)) * MiB;
  const r = await startRig(join(dir, 'migration'), { maxConcurrentJobs: 2, maxJobsPerHost: 1, maxJobsPerCluster: 2 });
  try {
    o.log(`cluster: generating a ${size / MiB} MiB disk`);
    const vm = await addVm(r, { name: 'mig-vm', index: 100, node: 'node-a', size, seed: 7 });
    spawnSync('sync');
    o.log('cluster: initial full on node-a');
    const full = await backups(r, [vm], false);
    rows.push({ part: 'migration', step: `initial full on ${vm.node}`, MB: Math.round(size / 1e6), seconds: f2(full.seconds), ...cpuCols(full.cpu), 'wire MB': f2(sent(full.jobs[0]!) / 1e6) });
    let seed = 11;
    const ratios: string[] = [];
    for (let pair = 0; pair < 2; pair++) {
      o.log(`cluster: 1% changed, incremental on ${vm.node} (no migration)`);
      const plain = await changeThroughQemu(vm.qemu, r.dir, size, 1, seed++);
      const compP = compressedSize(vm.disk, plain);
      const inc = await backups(r, [vm], false);
      const jp = inc.jobs[0]!;
      rows.push({ part: 'migration', step: `incremental on ${String(pointOf(jp).host)}, no migration (${tracking(jp)}, ${plain.length} blocks)`, MB: Math.round(size / 1e6), seconds: f2(inc.seconds), ...cpuCols(inc.cpu), 'wire MB': f2(sent(jp) / 1e6), 'compressed changed MB': f2(compP / 1e6), 'wire/compressed': Number((sent(jp) / compP).toFixed(3)) });
      const from = vm.node;
      o.log(`cluster: 0.5% changed, live migration ${from} → ${other(from)}, 0.5% changed, incremental there`);
      const before = await changeThroughQemu(vm.qemu, r.dir, size, 0.5, seed++);
      const migSeconds = await migrate(r, vm);
      const after = await changeThroughQemu(vm.qemu, r.dir, size, 0.5, seed++);
      const changed = [...new Map([...before, ...after].map((c) => [c[0], c])).values()];
      const compM = compressedSize(vm.disk, changed);
      const mig = await backups(r, [vm], false);
      const jm = mig.jobs[0]!;
      const timeRatio = mig.seconds / inc.seconds;
      ratios.push(`${from} → ${vm.node}: wire/compressed ${(sent(jm) / compM).toFixed(3)}, time ${timeRatio.toFixed(2)}x`);
      rows.push({
        part: 'migration', step: `after live migration ${from} → ${vm.node} (${migSeconds.toFixed(1)} s), on ${String(pointOf(jm).host)} (${tracking(jm)}, ${changed.length} blocks)`, MB: Math.round(size / 1e6), seconds: f2(mig.seconds), ...cpuCols(mig.cpu),
        'wire MB': f2(sent(jm) / 1e6), 'compressed changed MB': f2(compM / 1e6), 'wire/compressed': Number((sent(jm) / compM).toFixed(3)), 'time/no migration': f2(timeRatio),
      });
    }
    notes.push(`migration: disk ${size / MiB} MiB raw on the shared folder, QEMU TCG; ${ratios.join('; ')} (targets: wire <= 1.1x compressed changed, time <= 1.5x the incremental without a migration)`);
  } finally {
    await stopRig(r);
  }
}

async function throughputPart(o: BenchOptions, dir: string, rows: BenchRow[], notes: string[]): Promise<void> {
  const size = (o.quick ? 32 : Number(process.env.SHADOWVAULT_BENCH_CLUSTER_VM_MIB ?? 256)) * MiB;
  const percent = Number(process.env.SHADOWVAULT_BENCH_CLUSTER_PCT ?? 1);
  const limits = { maxConcurrentJobs: 8, maxJobsPerHost: 4, maxJobsPerCluster: 8 };
  const r = await startRig(join(dir, 'throughput'), limits);
  try {
    o.log(`cluster: 8 VMs of ${size / MiB} MiB, four on each node`);
    const vms: BenchVm[] = [];
    for (let i = 0; i < 8; i++) vms.push(await addVm(r, { name: `vm${i}`, index: i, node: i % 2 === 0 ? 'node-a' : 'node-b', size, seed: 100 + i }));
    spawnSync('sync');
    const row = (step: string, x: Timed, ratio?: number): BenchRow => ({
      part: 'throughput', step, MB: Math.round((x.jobs.length * size) / 1e6),
      seconds: f2(x.seconds), ...cpuCols(x.cpu), 'wire MB': f2(x.jobs.reduce((s, j) => s + sent(j), 0) / 1e6), ...(ratio !== undefined ? { 'parallel/serial': f2(ratio) } : {}),
    });
    o.log('cluster: fulls, four VMs one after another, four others at once');
    const fs = await backups(r, vms.slice(0, 4), false);
    const fp = await backups(r, vms.slice(4), true);
    rows.push(row('full, 4 VMs one after another', fs), row('full, 4 other VMs at once', fp, fp.seconds / fs.seconds));
    const serial: Timed[] = [];
    const parallel: Timed[] = [];
    let seed = 1000;
    for (let round = 0; round < (o.quick ? 2 : Number(process.env.SHADOWVAULT_BENCH_CLUSTER_ROUNDS ?? 4)); round++) {
      const par = round % 2 === 1;
      for (const vm of vms) await changeThroughQemu(vm.qemu, r.dir, size, percent, seed++);
      o.log(`cluster: incremental round ${round + 1}, 8 VMs ${par ? 'at once' : 'one after another'}`);
      const x = await backups(r, vms, par);
      const bad = x.jobs.filter((j) => tracking(j) !== 'bitmap');
      if (bad.length) throw new Error(`round ${round + 1}: not incremental from the bitmap: ${bad.map(tracking).join(', ')}`);
      (par ? parallel : serial).push(x);
      if (process.env.SHADOWVAULT_BENCH_CLUSTER_JOBLOG === '1') for (const j of x.jobs) o.log(jobTimeline(j));
      rows.push(row(`incremental round ${round + 1} (${percent}% changed), 8 VMs ${par ? 'at once' : 'one after another'}`, x, par ? x.seconds / serial.at(-1)!.seconds : undefined));
      o.log(`cluster: ${x.seconds.toFixed(2)} s, CPU ${JSON.stringify(cpuCols(x.cpu))}`);
    }
    const sum = (xs: Timed[]): number => xs.reduce((s, x) => s + x.seconds, 0);
    const ratio = sum(parallel) / sum(serial);
    rows.push({ part: 'throughput', step: 'incremental rounds: parallel / serial (sums)', seconds: f2(sum(parallel)), 'parallel/serial': f2(ratio) });
    notes.push(`throughput: ${cpus().length} cores; 8 VMs of ${size / MiB} MiB (TCG, idle, 4 per node), limits ${JSON.stringify(limits)}; incremental parallel/serial ${ratio.toFixed(2)}x, full ${(fp.seconds / fs.seconds).toFixed(2)}x (target <= 0.6x); load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await stopRig(r);
  }
}

/** A job's timeline in ms from its creation: start, each log line, end (SHADOWVAULT_BENCH_CLUSTER_JOBLOG=1). */
function jobTimeline(j: Job): string {
  const t0 = Date.parse(j.createdAt);
  const at = (iso: string | undefined): string => (iso ? String(Date.parse(iso) - t0) : '?');
  return `job ${j.id.slice(0, 8)}: started +${at(j.startedAt)}, ${j.log.map((l) => `+${at(l.time)} ${l.message.slice(0, 60)}`).join(' | ')}, ended +${at(j.finishedAt)}`;
}

async function stopRig(r: Rig): Promise<void> {
  for (const n of NODES) await stopAgent(r.agents[n]);
  for (const vm of r.vms) await stopQemu(vm.qemu);
  await r.b.close();
}

export const clusterSuite: Suite = {
  name: 'cluster',
  description: 'Two nodes of a cluster on loopback: the incremental after a live migration (wire, time), and 8 VMs backed up in parallel vs one after another',
  async run(o: BenchOptions): Promise<SuiteResult> {
    const dir = mkdtempSync(join(process.env.SHADOWVAULT_BENCH_TMP || tmpdir(), 'sv-bench-cluster-'));
    const parts = (process.env.SHADOWVAULT_BENCH_CLUSTER_PARTS ?? 'migration,throughput').split(',');
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    try {
      if (parts.includes('migration')) await migrationPart(o, dir, rows, notes);
      if (parts.includes('throughput')) await throughputPart(o, dir, rows, notes);
      return {
        columns: ['part', 'step', 'MB', 'seconds', 'CPU s', 'CPU appliance', 'CPU node-a', 'CPU node-b', 'CPU QEMU', 'wire MB', 'compressed changed MB', 'wire/compressed', 'time/no migration', 'parallel/serial'],
        rows,
        notes: [...notes, 'CPU s = user + system of this process (appliance, engine thread, its pool), each agent process, and every QEMU (/proc/PID/stat)'],
      };
    } finally {
      await closePool();
      if (existsSync(dir) && process.env.SHADOWVAULT_BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
    }
  },
};
