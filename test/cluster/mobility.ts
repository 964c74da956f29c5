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
 * - moveStorage: storage live migration on the same host, same QEMU (test/helpers/block-move.ts: mirror to a
 *   new file, `block-job-complete` = the pivot, `blockdev-del` of the old nodes).
 *
 * Neither carries the driver's tracking bitmap to the new disk file under the reference the appliance holds.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { queryStatus } from '../../src/qemu/qmp-commands.js';
import { until } from '../agent/helpers.js';
import { startAgentChild, type AgentChildOptions, type AgentProcess } from '../agent/vm-e2e-helpers.js';
import { emptyDisk, jobGone, jobReady, moveStorage as moveStorage1, rootNode } from '../helpers/block-move.js';
import { guestVmOptions } from '../helpers/guests.js';
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

/** A host outside the rig's cluster: standalone, or with `cluster` a node of another cluster. */
export async function addStandaloneHost(t: T, c: ClusterRig, name: string, cluster?: string): Promise<StandaloneHost> {
  const base = join(c.rig.dir, name);
  const storage = join(base, 'storage');
  const qmpDir = join(base, 'qmp');
  for (const d of [storage, qmpDir]) mkdirSync(d, { recursive: true });
  const agentOpts: AgentChildOptions = {
    appliance: c.rig.url, pair: await c.rig.pairCode(), name, dataDir: join(base, 'agent'), qmp: [join(qmpDir, '*.qmp')],
    stateDir: join(base, 'state'), restoreRoots: [storage], idleMs: 60_000, ...(cluster ? { cluster } : {}),
  };
  const agent = startAgentChild(t, agentOpts);
  await agent.connected();
  const { pair: _used, ...again } = agentOpts; // restarts use the saved credential
  const agentId = c.rig.a.appliance.agents.registry.list().find((a) => a.name === name)!.id;
  return { name, storage, agentOpts: again, agent, agentId, qmpDir };
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
    dir: manager, name: vm.name, uuid: vm.uuid, ...guestVmOptions(vm.guest, manager, vm.name), disks: [{ path: disk, format: 'raw' }],
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
  // As libvirt does: the migration stops before the switch-over, the mirror is finished there (the source's
  // disks are still active), then the migration goes on. Cancelling the mirror after the migration had
  // completed (the source's disks inactivated) made the source QEMU exit now and then.
  await src.execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: true }] });
  await src.execute('migrate', { uri: `unix:${sock}` });
  const migration = (want: string) => until(`migration of ${vm.name}: ${want}`, async () => {
    const m = await src.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`migration ${m.status}: ${m['error-desc'] ?? ''}; ${vm.qemu.stderr()}`);
    return m.status === want ? true : undefined;
  }, 120_000);
  await migration('pre-switchover');
  await src.execute('block-job-cancel', { device: job }); // ready: finishes the copy, the target stays consistent
  await jobGone(src, job);
  await src.execute('migrate-continue', { state: 'pre-switchover' });
  await migration('completed');
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

/** Storage live migration on the same host (test/helpers/block-move.ts moveStorage); updates `at.disk`. */
export async function moveStorage(vm: ClusterVm, at: Whereabouts, newPath: string): Promise<void> {
  await moveStorage1(vm.qemu.qmp, at.disk, newPath, String(vm.migrations++));
  at.disk = newPath;
}
