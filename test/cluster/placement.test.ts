/**
 * Where a VM runs when several nodes report it (src/appliance/agents/placement.ts), the scope check that lets
 * the nodes of one cluster report the same VM, the cluster query's grouping (clusters.ts) and the queue's
 * per-cluster limit, and locateVm following a VM out of its cluster. Pure logic and a real queue on a temp state folder; the end-to-end migrations are in
 * test/cluster/migration.test.ts.
 */
import pino from 'pino';
import t from 'tap';
import { buildClusters } from '../../src/appliance/agents/clusters.js';
import type { HostView, VmView } from '../../src/appliance/agents/inventory.js';
import { InventoryStore } from '../../src/appliance/agents/inventory.js';
import type { AgentRecord } from '../../src/appliance/agents/model.js';
import { placeVm, type VmSighting } from '../../src/appliance/agents/placement.js';
import { ManualClock } from '../../src/appliance/clock.js';
import { DEFAULT_LIMITS } from '../../src/appliance/config.js';
import type { DataSource } from '../../src/appliance/model.js';
import { JobQueue } from '../../src/appliance/queue.js';
import { StateDb } from '../../src/appliance/state.js';
import { locateVm } from '../../src/appliance/vm-jobs.js';
import { hasCode } from '../../src/errors/index.js';
import type { VmInfo } from '../../src/hypervisor/driver.js';
import { tempDir } from '../helpers/env.js';

const S = (host: string, state: string, migration?: VmSighting['migration'], cluster: string | null = 'c1'): VmSighting => ({ hostId: `id-${host}`, host, cluster, state, ...(migration ? { migration } : {}) });
const where = (s: VmSighting[]): string => placeVm('vm1', s).at.host;
const code = (s: VmSighting[]): string | undefined => {
  try {
    placeVm('vm1', s);
    return undefined;
  } catch (err) {
    for (const c of ['SV_ERR_AGENT_VM_MIGRATING', 'SV_ERR_AGENT_VM_AMBIGUOUS', 'SV_ERR_AGENT_NO_HOST'] as const) if (hasCode(err, c)) return c;
    throw err;
  }
};

t.test('placement: the side that runs the VM, never the arriving or departed one', async (t) => {
  t.equal(where([S('a', 'running')]), 'a', 'one node');
  t.equal(where([S('a', 'running', 'outgoing'), S('b', 'migrating', 'incoming')]), 'a', 'during a migration: the source');
  t.equal(where([S('a', 'paused', 'outgoing'), S('b', 'migrating', 'incoming')]), 'a', 'a paused source (final phase) still runs it');
  t.equal(where([S('a', 'migrating', 'completed'), S('b', 'running')]), 'b', 'after the switch-over: the destination');
  t.equal(where([S('a', 'stopped'), S('b', 'running')]), 'b', 'the old node remembers it stopped: the running one wins');
  t.equal(where([S('b', 'stopped'), S('a', 'stopped')]), 'a', 'stopped on two nodes of one cluster: the same files, first by name');
  t.equal(code([S('a', 'migrating', 'outgoing'), S('b', 'migrating', 'incoming')]), undefined, 'finish-migrate (outgoing) still on the source');
  t.equal(code([S('a', 'migrating', 'completed'), S('b', 'migrating', 'incoming')]), 'SV_ERR_AGENT_VM_MIGRATING', 'switch-over not yet seen by the destination: wait');
  t.equal(code([S('b', 'migrating', 'incoming')]), 'SV_ERR_AGENT_VM_MIGRATING', 'only arriving');
  t.equal(code([S('a', 'running'), S('b', 'running')]), 'SV_ERR_AGENT_VM_AMBIGUOUS', 'running twice: no guess');
  t.equal(code([S('a', 'stopped', undefined, 'c1'), S('b', 'stopped', undefined, 'c2')]), 'SV_ERR_AGENT_VM_AMBIGUOUS', 'stopped in two clusters: no guess');
  t.equal(code([]), 'SV_ERR_AGENT_NO_HOST');
  // a host whose agent cannot inspect the VM (its QMP socket does not answer) may still run it
  t.equal(code([S('a', 'stopped'), S('b', 'unknown')]), 'SV_ERR_AGENT_VM_MIGRATING', 'stopped on one node, not inspectable on the other: no backup from the files');
  t.equal(code([S('b', 'unknown')]), 'SV_ERR_AGENT_VM_MIGRATING', 'only a node that cannot inspect it: wait');
  t.equal(where([S('a', 'running'), S('b', 'unknown')]), 'a', 'running on one node: that node, whatever the other says');
  t.equal(where([S('a', 'running', 'outgoing'), S('b', 'unknown', 'incoming')]), 'a', 'a source still running wins over an arriving side that does not answer');
});

t.test('scope: nodes of one cluster may report the same VM; another cluster may not while both run it', async (t) => {
  const db = StateDb.open(tempDir(t));
  t.teardown(() => db.close());
  const inv = new InventoryStore(db, () => Date.now());
  const agent = (id: string, cluster: string | null): AgentRecord => ({ id, name: id, cluster, agentVersion: '1', hypervisor: { name: 'qemu', version: '7.2' }, pairedAt: '', tokenId: id, fingerprint: 'none' });
  const vm = (state: VmInfo['state'], migration?: VmInfo['migration']) => ({ id: 'vm1', name: 'w', state, ...(migration ? { migration } : {}), disks: [], guestAgent: { present: false, answering: false }, online: { possible: false, unmet: [] } });
  const report = (host: string, cluster: string | null, v: ReturnType<typeof vm>) => ({ host: { name: host, cluster, agentVersion: '1', hypervisor: { name: 'qemu', version: '7.2' } }, vms: [v] });
  const a = agent('a', 'c1');
  const b = agent('b', 'c1');
  const x = agent('x', null);
  const all = [a, b, x];
  await inv.put(a, report('a', 'c1', vm('running')));
  const up = (): boolean => true;
  t.doesNotThrow(() => inv.checkScope(b, report('b', 'c1', vm('migrating', 'incoming')), all, up), 'same cluster, arriving');
  t.doesNotThrow(() => inv.checkScope(b, report('b', 'c1', vm('running')), all, up), 'same cluster, even running (the placement refuses to guess)');
  t.doesNotThrow(() => inv.checkScope(x, report('x', null, vm('migrating', 'incoming')), all, up), 'another host, the VM arriving there');
  t.throws(() => inv.checkScope(x, report('x', null, vm('running')), all, up), { code: 'SV_ERR_AGENT_SCOPE' }, 'another host claiming it running too');
  t.doesNotThrow(() => inv.checkScope(x, report('x', null, vm('running')), all, (id) => id !== 'a'), 'unless the first host is away');
});

t.test('cluster query: nodes, VMs where they run, seen-on during a migration, protection', async (t) => {
  const host = (id: string, cluster: string | null): HostView => ({ id, name: id, cluster, agentVersion: '1', hypervisor: { name: 'qemu', version: '7.2' }, connected: true, lastSeenAt: null, reportedAt: null, vms: 1 });
  const v = (id: string, hostId: string, state: string, migration?: VmView['migration']): VmView => ({
    id, name: `n-${id}`, host: hostId, hostId, hostConnected: true, cluster: hostId === 'x' ? null : 'c1', state, ...(migration ? { migration } : {}), disks: [], guestAgent: { present: false, answering: false }, online: { possible: false, unmet: [], details: [] },
  });
  const source: DataSource = { id: 's1', name: 'vm1', host: 'a', disks: [], vm: { id: 'vm1', name: 'n-vm1', online: true, agentId: 'a', cluster: 'c1' }, createdAt: '' };
  const out = await buildClusters({
    hosts: [host('a', 'c1'), host('b', 'c1'), host('x', null)],
    vms: [v('vm1', 'a', 'running', 'outgoing'), v('vm1', 'b', 'migrating', 'incoming'), v('vm2', 'b', 'running'), v('vm3', 'x', 'running')],
    sources: [source],
    jobs: [{ id: 'j1', kind: 'backup', sourceId: 's1', state: 'succeeded', trigger: 'api', attempt: 1, createdAt: '', finishedAt: 'T', log: [], progress: { done: 0, total: 0 } } as never],
    lastPoint: async (name) => (name === 'vm1' ? { id: 'p1', time: 'T', consistency: 'offline' } : undefined),
  });
  t.equal(out.length, 1, 'one cluster (the standalone host is not one)');
  const c = out[0]!;
  t.same(c.nodes.map((n) => [n.name, n.runs]), [['a', 1], ['b', 1]], 'nodes and how many VMs each runs');
  t.same(c.vms.map((x) => [x.id, x.runsOn?.host]), [['vm1', 'a'], ['vm2', 'b']], 'VMs and where they run');
  t.same(c.vms[0]!.seenOn.map((s) => [s.host, s.migration]), [['a', 'outgoing'], ['b', 'incoming']], 'a migration shows both sides');
  t.match(c.vms[0]!.protection, { state: 'protected', source: { name: 'vm1' }, lastPoint: { id: 'p1' }, lastJob: { id: 'j1', state: 'succeeded' } });
  t.equal(c.vms[1]!.protection.state, 'unprotected');
});

t.test('queue: at most maxJobsPerCluster jobs in one cluster, maxJobsPerHost per node', async (t) => {
  const db = StateDb.open(tempDir(t));
  const place: Record<string, { host: string; cluster: string | null }> = {
    v1: { host: 'a', cluster: 'c1' }, v2: { host: 'b', cluster: 'c1' }, v3: { host: 'c', cluster: 'c1' }, v4: { host: 'd', cluster: 'c2' }, v5: { host: 'a', cluster: 'c1' },
  };
  const release: Array<() => void> = [];
  const q = new JobQueue({
    db, clock: new ManualClock('2026-01-01T00:00:00Z'), limits: { ...DEFAULT_LIMITS, maxConcurrentJobs: 8, maxJobsPerHost: 1, maxJobsPerCluster: 2 }, log: pino({ level: 'silent' }),
    hostOf: (id) => place[id]!,
    exec: () => new Promise((resolve) => release.push(() => resolve({}))),
  });
  t.teardown(async () => {
    await q.stop();
    await db.close();
  });
  q.start();
  const jobs = [];
  for (const s of Object.keys(place)) jobs.push(await q.enqueue({ kind: 'backup', trigger: 'api', sourceId: s }));
  for (let i = 0; i < 10; i++) {
    await db.flush();
    await new Promise((r) => setImmediate(r));
  }
  t.same(jobs.map((j) => j.state), ['running', 'running', 'queued', 'running', 'queued'], 'c1: two nodes at once (the third waits); c2 runs beside them; node a: one at a time');
  for (let i = 0; i < 200 && !jobs.every((j) => j.state === 'succeeded'); i++) {
    release.splice(0).forEach((f) => f());
    await db.flush();
    await new Promise((r) => setTimeout(r, 5));
  }
  t.ok(jobs.every((j) => j.state === 'succeeded'), 'and all run in the end');
});

t.test('locateVm: a VM followed out of its cluster only when its own host says it left', async (t) => {
  type Seen = { host: string; state: string; migration?: VmSighting['migration']; connected?: boolean };
  const hostsOf = (up: Record<string, boolean>, clusters: Record<string, string | null>) => Object.entries(up).map(([h, connected]) => ({ id: `id-${h}`, name: h, cluster: clusters[h] ?? null, connected }));
  const clusters = { a: 'c1', b: 'c1', solo: null, x: 'c2' };
  const access = (seen: Seen[], up: Record<string, boolean>) => ({
    rpc: undefined as never,
    hosts: () => hostsOf(up, clusters),
    vms: () => seen.map((s) => ({ id: 'vm1', name: 'vm1', hostId: `id-${s.host}`, host: s.host, hostConnected: s.connected ?? up[s.host] ?? false, state: s.state, ...(s.migration ? { migration: s.migration } : {}) })),
  });
  const bound = { agentId: 'id-a', cluster: 'c1' };
  const at = (seen: Seen[], up: Record<string, boolean>): string => {
    try {
      const l = locateVm(access(seen, up), 'vm1', bound);
      return `${l.host}${l.movedFrom ? ` (from ${l.movedFrom.host})` : ''}`;
    } catch (err) {
      return (err as { code: string }).code;
    }
  };
  const all = { a: true, b: true, solo: true, x: true };
  t.equal(at([{ host: 'a', state: 'running' }], all), 'a', 'at home');
  t.equal(at([{ host: 'a', state: 'stopped' }, { host: 'b', state: 'running' }], all), 'b', 'in its cluster: no move');
  t.equal(at([{ host: 'a', state: 'stopped' }, { host: 'solo', state: 'running' }], all), 'solo (from a)', 'its host says stopped: followed to a standalone host');
  t.equal(at([{ host: 'solo', state: 'running' }], all), 'solo (from a)', 'its host no longer reports it: followed');
  t.equal(at([{ host: 'a', state: 'migrating', migration: 'completed' }, { host: 'x', state: 'running' }], all), 'x (from a)', 'migration completed: followed to another cluster');
  t.equal(at([{ host: 'a', state: 'running', migration: 'outgoing' }, { host: 'solo', state: 'migrating', migration: 'incoming' }], all), 'a', 'during the migration: still at home');
  t.equal(at([{ host: 'a', state: 'stopped' }, { host: 'solo', state: 'migrating', migration: 'incoming' }], all), 'a', 'arriving elsewhere while stopped at home: the files at home');
  t.equal(at([{ host: 'a', state: 'running' }, { host: 'solo', state: 'running' }], all), 'a', 'still running at home: the claimant is ignored');
  t.equal(at([{ host: 'a', state: 'running' }, { host: 'solo', state: 'running' }], { ...all, a: false }), 'SV_ERR_AGENT_VM_NOT_HOSTED', 'its host down: not followed');
  t.equal(at([{ host: 'solo', state: 'running' }], { ...all, a: false }), 'SV_ERR_AGENT_VM_NOT_HOSTED', 'its host down and silent: not followed');
  t.equal(at([{ host: 'a', state: 'running' }, { host: 'solo', state: 'stopped' }], { ...all, a: false }), 'SV_ERR_AGENT_NO_HOST', 'its host down, another only remembers it stopped: its host is not connected');
  t.equal(at([{ host: 'b', state: 'running' }, { host: 'solo', state: 'running' }], { ...all, b: false }), 'SV_ERR_AGENT_VM_NOT_HOSTED', 'a node of its cluster (down) last said it runs it: not followed');
  t.equal(at([{ host: 'solo', state: 'running' }], { b: true, solo: true }), 'solo (from id-a)', 'its host is no longer paired: followed');
});
