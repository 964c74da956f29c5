/**
 * The cluster rig: one real appliance (test/agent/vm-e2e-helpers.ts), two host agents as child processes
 * ("nodes" node-a and node-b of cluster c1, each with its own QMP glob and state folder), a folder both nodes
 * see at the same path (the cluster shared volume: every VM's disk is there), and writer-guest VMs (TCG) that
 * a test migrates between the nodes the way a cluster manager does: a destination QEMU started with
 * `-incoming defer` on the same disk file, `migrate-incoming` + `migrate` over a unix socket, the source
 * quit once the migration completed. A VM runs the writer guest or, with `guest: 'linux'`, the Linux guest
 * (test/helpers/guests.ts); `rule` checks a restored point with that guest's rule.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Job } from '../../src/appliance/model.js';
import type { ClusterView } from '../../src/appliance/agents/clusters.js';
import { queryStatus } from '../../src/qemu/qmp-commands.js';
import { startVm, type Vm } from '../helpers/vm.js';
import { checkGuestImage, guestReady, guestVmOptions, makeGuestDisk, type Guest } from '../helpers/guests.js';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { until } from '../agent/helpers.js';
import { startAgentChild, startRig, type AgentProcess, type Rig } from '../agent/vm-e2e-helpers.js';

interface T {
  teardown(fn: () => void | Promise<void>): void;
}

export type NodeName = 'node-a' | 'node-b';
export const CLUSTER = 'c1';
export const BS = 64 * 1024;

export interface ClusterVm {
  readonly name: string;
  readonly uuid: string;
  readonly disk: string;
  readonly guest: Guest;
  node: NodeName;
  qemu: Vm;
  sourceId: string;
  sourceName: string;
  migrations: number;
}

export interface ClusterRig {
  readonly rig: Rig;
  readonly shared: string;
  readonly agents: Record<NodeName, AgentProcess>;
  readonly agentIds: Record<NodeName, string>;
  /** Start VMs (writer guests unless `guest` says; disks in the shared folder; all at once), wait until the appliance sees them, protect them. */
  addVms(list: ReadonlyArray<{ name: string; uuid: string; node: NodeName; guest?: Guest }>): Promise<ClusterVm[]>;
  /** Live-migrate to the other node; resolves true when it completed (the source quit), false when QEMU refused or failed it. */
  migrate(vm: ClusterVm): Promise<{ completed: boolean; error?: string }>;
  /** The cluster query. */
  clusters(): Promise<ClusterView[]>;
  /** Wait until the cluster query places the VM on `node`. */
  placedOn(vm: ClusterVm, node: NodeName): Promise<void>;
  backup(vm: ClusterVm): Promise<Job>;
  points(vm: ClusterVm): Promise<string[]>;
  /** Restore a point's disk from the store and check the VM's guest rule (test/helpers/guests.ts). */
  rule(vm: ClusterVm, pointId: string): Promise<{ ok: boolean; problems: string[] }>;
  /** Write distinct 64 KiB patterns at `blocks` through the VM's QEMU (as the guest would); writer guests only. */
  writeBlocks(vm: ClusterVm, blocks: number[]): Promise<void>;
  running(vm: ClusterVm): Promise<boolean>;
}

const other = (n: NodeName): NodeName => (n === 'node-a' ? 'node-b' : 'node-a');

export async function startClusterRig(t: T, opts: { limits?: { maxConcurrentJobs?: number; maxJobsPerHost?: number; maxJobsPerCluster?: number } } = {}): Promise<ClusterRig> {
  const rig = await startRig(t, { limits: { maxConcurrentJobs: 4, maxJobsPerHost: 1, maxJobsPerCluster: 2, ...opts.limits } });
  const shared = join(rig.dir, 'csv');
  const nodeDir = (n: NodeName): string => join(rig.dir, n);
  for (const d of [shared, nodeDir('node-a'), nodeDir('node-b')]) mkdirSync(d, { recursive: true });
  const startAgent = async (n: NodeName): Promise<AgentProcess> => {
    const a = startAgentChild(t, {
      appliance: rig.url, pair: await rig.pairCode(), name: n, cluster: CLUSTER, dataDir: join(rig.dir, `${n}-agent`), qmp: [join(nodeDir(n), '*.qmp')],
      stateDir: join(rig.dir, `${n}-state`), restoreRoots: [shared], idleMs: 60_000,
    });
    await a.connected();
    return a;
  };
  const agents = { 'node-a': await startAgent('node-a'), 'node-b': await startAgent('node-b') };
  const idOf = (n: NodeName): string => rig.a.appliance.agents.registry.list().find((a) => a.name === n)!.id;
  const agentIds = { 'node-a': idOf('node-a'), 'node-b': idOf('node-b') };
  const sighting = (uuid: string, n: NodeName) => rig.a.appliance.agents.vms().find((v) => v.id === uuid && v.hostId === agentIds[n] && v.hostConnected);
  const clusters = async (): Promise<ClusterView[]> => (await rig.a.call('viewer', 'GET', '/api/v1/clusters')).json() as ClusterView[];
  // Two QMP sockets per QEMU (one client each): the agent's in its node's folder (its --qmp glob), the test's
  // (the "cluster manager") beside it.
  const qemuOn = async (n: NodeName, vm: { name: string; uuid: string; disk: string; guest: Guest }, incoming: boolean): Promise<Vm> => {
    const mine = join(rig.dir, `${n}-manager`);
    mkdirSync(mine, { recursive: true });
    const opts = guestVmOptions(vm.guest, mine, vm.name);
    const qemu = await startVm(t, {
      dir: mine, name: vm.name, uuid: vm.uuid, ...opts, disks: [{ path: vm.disk, format: 'raw' }],
      extraArgs: ['-qmp', `unix:${join(nodeDir(n), `${vm.name}.qmp`)},server=on,wait=off`, ...(incoming ? ['-incoming', 'defer'] : [])],
    });
    if (!incoming) await guestReady(vm.guest, vm.disk, opts); // the rule needs a full ring / written files (a loaded machine slows the guests down)
    return qemu;
  };

  const r: ClusterRig = {
    rig, shared, agents, agentIds,
    async addVms(list) {
      const started = await Promise.all(list.map(async ({ name, uuid, node, guest = 'writer' }) => {
        const disk = makeGuestDisk(guest, join(shared, `${name}.raw`));
        return { name, uuid, node, disk, guest, qemu: await qemuOn(node, { name, uuid, disk, guest }, false) };
      }));
      const out: ClusterVm[] = [];
      for (const { name, uuid, node, disk, guest, qemu } of started) {
        await until(`VM ${name} on ${node}`, () => sighting(uuid, node), 30_000);
        const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: uuid, name });
        if (added.statusCode !== 201) throw new Error(`add source ${name}: ${added.statusCode} ${added.body}`);
        const src = added.json() as { id: string; name: string };
        out.push({ name, uuid, disk, guest, node, qemu, sourceId: src.id, sourceName: src.name, migrations: 0 });
      }
      return out;
    },
    async migrate(vm) {
      const to = other(vm.node);
      const next = await qemuOn(to, vm, true);
      // the destination's agent sees the VM arriving (and turns the dirty-bitmaps capability on) first
      await until(`VM ${vm.name} arriving on ${to}`, () => (sighting(vm.uuid, to)?.migration === 'incoming' ? true : undefined), 30_000);
      const sock = join(rig.dir, `mig-${vm.name}-${vm.migrations++}.sock`);
      await next.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
      try {
        await vm.qemu.qmp.execute('migrate', { uri: `unix:${sock}` });
      } catch (err) {
        await next.shutdown();
        return { completed: false, error: (err as Error).message };
      }
      const end = Date.now() + 60_000;
      for (;;) {
        const m = await vm.qemu.qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
        if (m.status === 'completed') break;
        if (m.status === 'failed' || m.status === 'cancelled' || Date.now() > end) {
          await next.shutdown();
          return { completed: false, error: `${m['error-desc'] ?? m.status ?? 'timed out'}; source: ${vm.qemu.stderr().trim().split('\n').at(-1) ?? ''}` };
        }
        await new Promise((res) => setTimeout(res, 50));
      }
      await until(`${vm.name} running on ${to}`, async () => ((await queryStatus(next.qmp)).status === 'running' ? true : undefined), 30_000);
      await vm.qemu.shutdown();
      vm.qemu = next;
      vm.node = to;
      return { completed: true };
    },
    clusters,
    async placedOn(vm, node) {
      await until(`${vm.name} placed on ${node}`, async () => {
        const c = (await clusters()).find((x) => x.name === CLUSTER);
        return c?.vms.find((v) => v.id === vm.uuid)?.runsOn?.host === node ? true : undefined;
      }, 30_000);
    },
    async backup(vm) {
      const r1 = await rig.a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId: vm.sourceId });
      if (r1.statusCode !== 202) throw new Error(`start job: ${r1.statusCode} ${r1.body}`);
      return rig.a.appliance.queue.waitFor((r1.json() as Job).id);
    },
    async points(vm) {
      return ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${vm.sourceId}/points`)).json() as { id: string }[]).map((p) => p.id);
    },
    async rule(vm, pointId) {
      const out = join(rig.dir, `restore-${vm.name}-${pointId}.raw`);
      const img = await rig.a.appliance.engine.exportImage({ source: vm.sourceName, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
      await pipeline(img.stream(), createWriteStream(out));
      const point = (await rig.a.appliance.engine.listPoints(vm.sourceName)).find((p) => p.id === pointId);
      return checkGuestImage(vm.guest, out, rig.dir, point?.consistency);
    },
    async writeBlocks(vm, blocks) {
      if (vm.guest !== 'writer') throw new Error(`writeBlocks: ${vm.name} runs the ${vm.guest} guest (its file system would be damaged)`);
      for (const [i, b] of blocks.entries()) {
        const out = await vm.qemu.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -P ${0x11 + i} ${b * BS} ${BS}"` });
        if (typeof out === 'string' && /error/i.test(out)) throw new Error(`qemu-io: ${out}`);
      }
    },
    async running(vm) {
      return (await queryStatus(vm.qemu.qmp)).status === 'running';
    },
  };
  return r;
}

/**
 * A writer VM's QEMU on a node that is not part of a ClusterRig (test/cluster/owners.test.ts): the agent's
 * QMP socket in `qmpDir` (that node's --qmp glob), the test's beside its files in `managerDir`.
 */
export async function startNodeQemu(t: T, o: { managerDir: string; qmpDir: string; name: string; uuid: string; disk: string; guest?: Guest; incoming?: boolean }): Promise<Vm> {
  mkdirSync(o.managerDir, { recursive: true });
  const guest = o.guest ?? 'writer';
  const opts = guestVmOptions(guest, o.managerDir, o.name);
  const vm = await startVm(t, {
    dir: o.managerDir, name: o.name, uuid: o.uuid, ...opts, disks: [{ path: o.disk, format: 'raw' }],
    extraArgs: ['-qmp', `unix:${join(o.qmpDir, `${o.name}.qmp`)},server=on,wait=off`, ...(o.incoming ? ['-incoming', 'defer'] : [])],
  });
  if (!o.incoming) await guestReady(guest, o.disk, opts);
  return vm;
}

/**
 * Live-migrate `from` to a new QEMU on the node of `to` (shared disk, as a cluster manager does: destination
 * `-incoming defer`, `arriving()` awaited so that the destination's agent sees it come, `migrate` over a unix
 * socket in `sockDir`), then quit the source. Resolves the destination's QEMU; throws when the migration fails.
 */
export async function liveMigrateAndQuit(t: T, from: Vm, to: { managerDir: string; qmpDir: string; name: string; uuid: string; disk: string; guest?: Guest }, sockDir: string, arriving: () => Promise<void>): Promise<Vm> {
  const next = await startNodeQemu(t, { ...to, incoming: true });
  await arriving();
  const sock = join(sockDir, `mig-${to.name}-${Date.now()}.sock`);
  await next.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
  await from.qmp.execute('migrate', { uri: `unix:${sock}` });
  await until(`migration of ${to.name}`, async () => {
    const m = await from.qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`migration of ${to.name} ${m.status}: ${m['error-desc'] ?? ''}`);
    return m.status === 'completed' ? true : undefined;
  }, 60_000);
  await until(`${to.name} running after the migration`, async () => ((await queryStatus(next.qmp)).status === 'running' ? true : undefined), 30_000);
  await from.shutdown();
  return next;
}
