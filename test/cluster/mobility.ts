/**
 * Mobility beyond the cluster (issue 11 §3), on top of the cluster rig (rig.ts): a standalone host (its own
 * agent, no --cluster, its own QMP folder and its own storage folder), and the two moves a management tool
 * makes with QEMU's own block jobs, driven the way libvirt drives them:
 *
 * - migrateWithStorage: the VM goes to another host with its disks, over non-shared storage. The destination
 *   QEMU starts with `-incoming defer -S` on an empty disk file of the same size in its own storage and exports
 *   that disk writable over NBD (unix socket); the source mirrors its disk to that export (`blockdev-add` nbd +
 *   `blockdev-mirror` sync full) until the job is ready, then migrates; once the migration completed, the source
 *   cancels the ready mirror (it finishes the copy, the target stays consistent), the destination removes the
 *   export and resumes (`cont`), and the source quits.
 * - moveStorage: storage live migration on the same host, same QEMU: `blockdev-add` of a new file + format
 *   node, `blockdev-mirror` sync full, `block-job-complete` (the pivot: the device now writes the new file),
 *   then `blockdev-del` of the old nodes, which releases the old file.
 *
 * Neither carries the driver's tracking bitmap to the new disk file under the reference the appliance holds.
 */
import { mkdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queryStatus } from '../../src/qemu/qmp-commands.js';
import type { QmpClient } from '../../src/qemu/qmp.js';
import { until } from '../agent/helpers.js';
import { startAgentChild, type AgentChildOptions, type AgentProcess } from '../agent/vm-e2e-helpers.js';
import { startVm, type Vm } from '../helpers/vm.js';
import type { ClusterRig, ClusterVm } from './rig.js';

interface T {
  teardown(fn: () => void | Promise<void>): void;
}

export interface StandaloneHost {
  readonly name: string;
  /** Its storage (the VMs' disks that moved here). */
  readonly storage: string;
  readonly agentOpts: AgentChildOptions;
  agent: AgentProcess;
  readonly agentId: string;
  /** Its QMP folder (the agent's --qmp glob). */
  readonly qmpDir: string;
}

/** Where a VM is now, beyond what ClusterVm records: its host's name and its disk file. */
export interface Whereabouts {
  host: string;
  disk: string;
}

export async function addStandaloneHost(t: T, c: ClusterRig, name: string): Promise<StandaloneHost> {
  const base = join(c.rig.dir, name);
  const storage = join(base, 'storage');
  const qmpDir = join(base, 'qmp');
  for (const d of [storage, qmpDir]) mkdirSync(d, { recursive: true });
  const agentOpts: AgentChildOptions = {
    appliance: c.rig.url, pair: await c.rig.pairCode(), name, dataDir: join(base, 'agent'), qmp: [join(qmpDir, '*.qmp')],
    stateDir: join(base, 'state'), restoreRoots: [storage], idleMs: 60_000,
  };
  const agent = startAgentChild(t, agentOpts);
  await agent.connected();
  const { pair: _used, ...again } = agentOpts; // restarts use the saved credential
  const agentId = c.rig.a.appliance.agents.registry.list().find((a) => a.name === name)!.id;
  return { name, storage, agentOpts: again, agent, agentId, qmpDir };
}

/** The root node of the VM's first disk device (`disk0`, or the mirror target after a storage move). */
async function rootNode(qmp: QmpClient): Promise<string> {
  const blocks = await qmp.execute<Array<{ qdev?: string; inserted?: { 'node-name': string } }>>('query-block');
  const b = blocks.find((x) => x.qdev?.includes('vblk0') && x.inserted);
  if (!b?.inserted) throw new Error(`no vblk0 in query-block: ${JSON.stringify(blocks)}`);
  return b.inserted['node-name'];
}

async function jobReady(qmp: QmpClient, id: string, ms = 120_000): Promise<void> {
  await until(`block job ${id} ready`, async () => {
    const jobs = await qmp.execute<Array<{ device: string; ready: boolean; status?: string }>>('query-block-jobs');
    const j = jobs.find((x) => x.device === id);
    if (!j) throw new Error(`block job ${id} is gone before it was ready`);
    return j.ready ? true : undefined;
  }, ms);
}

async function jobGone(qmp: QmpClient, id: string, ms = 60_000): Promise<void> {
  await until(`block job ${id} finished`, async () => {
    const jobs = await qmp.execute<Array<{ device: string }>>('query-block-jobs');
    return jobs.some((x) => x.device === id) ? undefined : true;
  }, ms);
}

/** A sparse raw file of `size` bytes (the mirror target; a management tool pre-creates it the same way). */
function emptyDisk(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}

/**
 * Live-migrate `vm` from wherever it runs (`at`) to the standalone host `to`, disks copied to `to`'s storage
 * (see the top comment). Resolves once the VM runs on `to` and the source QEMU quit; updates vm.qemu and `at`.
 */
export async function migrateWithStorage(t: T, c: ClusterRig, vm: ClusterVm, at: Whereabouts, to: StandaloneHost): Promise<void> {
  const size = statSync(at.disk).size;
  const disk = join(to.storage, `${vm.name}.raw`);
  emptyDisk(disk, size);
  const manager = join(c.rig.dir, `${to.name}-manager`);
  mkdirSync(manager, { recursive: true });
  const next: Vm = await startVm(t, {
    dir: manager, name: vm.name, uuid: vm.uuid, memoryMb: 32, disks: [{ path: disk, format: 'raw' }],
    extraArgs: ['-qmp', `unix:${join(to.qmpDir, `${vm.name}.qmp`)},server=on,wait=off`, '-incoming', 'defer', '-S'],
  });
  // the destination's agent sees the VM arriving first (and turns the dirty-bitmaps capability on)
  await until(`VM ${vm.name} arriving on ${to.name}`, () => (c.rig.a.appliance.agents.vms().some((v) => v.id === vm.uuid && v.hostId === to.agentId && v.migration === 'incoming') ? true : undefined), 30_000);
  const n = vm.migrations++;
  const nbd = join(c.rig.dir, `mig-nbd-${vm.name}-${n}.sock`);
  await next.qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: nbd } } });
  await next.qmp.execute('block-export-add', { type: 'nbd', id: 'mig-dst', 'node-name': 'disk0', name: 'disk0', writable: true });
  const src = vm.qemu.qmp;
  const job = `mig-${n}`;
  await src.execute('blockdev-add', { driver: 'nbd', 'node-name': `mig-tgt-${n}`, server: { type: 'unix', path: nbd }, export: 'disk0' });
  await src.execute('blockdev-mirror', { 'job-id': job, device: await rootNode(src), target: `mig-tgt-${n}`, sync: 'full' });
  await jobReady(src, job);
  const sock = join(c.rig.dir, `mig-${vm.name}-${n}.sock`);
  await next.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
  await src.execute('migrate', { uri: `unix:${sock}` });
  await until(`migration of ${vm.name} completed`, async () => {
    const m = await src.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`migration ${m.status}: ${m['error-desc'] ?? ''}; ${vm.qemu.stderr()}`);
    return m.status === 'completed' ? true : undefined;
  }, 120_000);
  await src.execute('block-job-cancel', { device: job }); // ready: finishes the copy, the target stays consistent
  await jobGone(src, job);
  await src.execute('blockdev-del', { 'node-name': `mig-tgt-${n}` }); // the NBD client goes: the export is free
  await next.qmp.execute('block-export-del', { id: 'mig-dst' });
  await until('the export is gone', async () => ((await next.qmp.execute<unknown[]>('query-block-exports')).length === 0 ? true : undefined));
  await next.qmp.execute('nbd-server-stop');
  await next.qmp.execute('cont');
  await until(`${vm.name} running on ${to.name}`, async () => ((await queryStatus(next.qmp)).status === 'running' ? true : undefined), 30_000);
  await vm.qemu.shutdown();
  vm.qemu = next;
  at.host = to.name;
  at.disk = disk;
}

/**
 * Storage live migration on the same host: mirror the VM's disk to `newPath` and pivot (same QEMU), then drop
 * the old nodes. Updates `at.disk`.
 */
export async function moveStorage(vm: ClusterVm, at: Whereabouts, newPath: string): Promise<void> {
  const qmp = vm.qemu.qmp;
  emptyDisk(newPath, statSync(at.disk).size);
  const n = vm.migrations++;
  const old = await rootNode(qmp);
  const oldFile = (await qmp.execute<Array<{ 'node-name': string; file: string; drv: string }>>('query-named-block-nodes'))
    .find((x) => x.drv === 'file' && x.file === at.disk)?.['node-name'];
  await qmp.execute('blockdev-add', { driver: 'file', filename: newPath, 'node-name': `mv-file-${n}` });
  await qmp.execute('blockdev-add', { driver: 'raw', file: `mv-file-${n}`, 'node-name': `mv-disk-${n}` });
  const job = `mv-${n}`;
  await qmp.execute('blockdev-mirror', { 'job-id': job, device: old, target: `mv-disk-${n}`, sync: 'full' });
  await jobReady(qmp, job);
  await qmp.execute('block-job-complete', { device: job });
  await jobGone(qmp, job);
  const now = await rootNode(qmp);
  if (now !== `mv-disk-${n}`) throw new Error(`after the pivot vblk0 is on ${now}, not mv-disk-${n}`);
  await qmp.execute('blockdev-del', { 'node-name': old });
  if (oldFile) await qmp.execute('blockdev-del', { 'node-name': oldFile });
  at.disk = newPath;
}
