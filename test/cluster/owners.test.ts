/**
 * Two appliances, and VM ownership that travels with the VM (issue 11 §4), end to end with real processes:
 * appliances A ("appliance-a") and B ("appliance-b"), each with its own store; two clusters, each on its own
 * shared folder: c1 = n1 (paired with A) + n2 (paired with A, then started again with B's URL and code: it
 * serves both), c2 = n3 (paired with B) + n4 (paired with B, then A). VMs v1 (the Linux guest: ext4, qemu-ga,
 * checksummed files; c1, protected by A) and v2 (the writer guest; c2, protected by B) live-migrate onto the
 * nodes that serve both appliances.
 *
 * - the agent keeps both pairings and serves both appliances (one channel each);
 * - after the migration B sees v1 "protected by appliance-a" (`vms --json` protectedBy) and refuses to protect
 *   it (SV_ERR_AGENT_VM_OWNED naming A); A goes on backing it up there, incrementally; the same for v2 and A;
 * - an admin takeover (`sources add --vm v1 --take-over` on B): shown in `vms` on both sides, A's backups of
 *   v1 are refused by the host from then on (also after v1 moves back to a node only A's agent serves), B's
 *   work; A removing its source then does not release B's VM;
 * - B removing its v2 source releases v2: A protects it without a takeover;
 * - A removing v2's source while v2's only host has its agent killed -9: the release is kept (owner-releases)
 *   and done when the agent is back (B then sees v2 free); A adding v2 again claims it;
 * - every point is in exactly one store: each VM's series per store is what its owner of the moment made,
 *   and the points restore and pass their guest's rule (v1: `e2fsck -fn` and the checksums; v2: the writer rule).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import type { VmView } from '../../src/appliance/agents/inventory.js';
import type { ClusterView } from '../../src/appliance/agents/clusters.js';
import { closePool } from '../../src/pool/index.js';
import type { Vm } from '../helpers/vm.js';
import { cliInProcess, cliJsonInProcess } from '../helpers/cli.js';
import { checkGuestImage, makeGuestDisk, type Guest } from '../helpers/guests.js';
import { until } from '../agent/helpers.js';
import { startAgentChild, startRig, type AgentProcess, type Rig } from '../agent/vm-e2e-helpers.js';
import { liveMigrateAndQuit, startNodeQemu } from './rig.js';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

t.teardown(() => closePool());

const A = await startRig(t, { name: 'appliance-a', limits: { maxConcurrentJobs: 2, maxJobsPerHost: 1 } });
const B = await startRig(t, { name: 'appliance-b', limits: { maxConcurrentJobs: 2, maxJobsPerHost: 1 } });
const dir = A.dir;
type Node = 'n1' | 'n2' | 'n3' | 'n4';
const CLUSTER: Record<Node, string> = { n1: 'c1', n2: 'c1', n3: 'c2', n4: 'c2' };
const csv = { c1: join(dir, 'csv1'), c2: join(dir, 'csv2') };
const qmpDir = (n: Node): string => join(dir, `${n}-qmp`);
for (const d of [csv.c1, csv.c2, qmpDir('n1'), qmpDir('n2'), qmpDir('n3'), qmpDir('n4')]) mkdirSync(d, { recursive: true });

const agentOf = (n: Node, rig: Rig, pair?: string): AgentProcess => startAgentChild(t, {
  appliance: rig.url, ...(pair ? { pair } : {}), name: n, cluster: CLUSTER[n], dataDir: join(dir, `${n}-agent`), qmp: [join(qmpDir(n), '*.qmp')],
  stateDir: join(dir, `${n}-state`), restoreRoots: [csv[CLUSTER[n] as 'c1' | 'c2']], idleMs: 60_000,
});
const hostId = (rig: Rig, n: Node): string | undefined => rig.a.appliance.agents.registry.list().find((a) => a.name === n)?.id;
const sees = (rig: Rig, n: Node): Promise<string> => until(`${n} connected to ${rig.a.appliance.identity.name}`, () => {
  const id = hostId(rig, n);
  return id && rig.a.appliance.agents.connected(id) ? id : undefined;
}, 30_000);

// n1 → A, n3 → B; n2 → A then again with B (keeps A), n4 → B then again with A (keeps B)
const agents: Partial<Record<Node, AgentProcess>> = {};
agents.n1 = agentOf('n1', A, await A.pairCode());
agents.n3 = agentOf('n3', B, await B.pairCode());
const first = { n2: agentOf('n2', A, await A.pairCode()), n4: agentOf('n4', B, await B.pairCode()) };
await Promise.all([agents.n1.connected(), agents.n3.connected(), first.n2.connected(), first.n4.connected()]);
await Promise.all([first.n2.stop(), first.n4.stop()]);
agents.n2 = agentOf('n2', B, await B.pairCode());
agents.n4 = agentOf('n4', A, await A.pairCode());
await Promise.all([agents.n2.connected(), agents.n4.connected()]);

interface TVm { name: string; uuid: string; disk: string; guest: Guest; node: Node; qemu: Vm }
const manager = join(dir, 'manager');
const startOn = async (name: string, uuid: string, node: Node, guest: Guest): Promise<TVm> => {
  const disk = makeGuestDisk(guest, join(csv[CLUSTER[node] as 'c1' | 'c2'], `${name}.raw`));
  // resolves once the guest has written enough for its rule
  return { name, uuid, disk, guest, node, qemu: await startNodeQemu(t, { managerDir: manager, qmpDir: qmpDir(node), name, uuid, disk, guest }) };
};
const [v1, v2] = await Promise.all([startOn('v1', '0e4e7a00-0000-4000-8000-0000000000a1', 'n1', 'linux'), startOn('v2', '0e4e7a00-0000-4000-8000-0000000000b2', 'n3', 'writer')]);

const vmOn = (rig: Rig, vm: TVm, n: Node): VmView | undefined => rig.a.appliance.agents.vms().find((v) => v.id === vm.uuid && v.hostId === hostId(rig, n) && v.hostConnected);
const seenOn = (rig: Rig, vm: TVm, n: Node, check: (v: VmView) => boolean = () => true): Promise<VmView> =>
  until(`${vm.name} on ${n} as ${rig.a.appliance.identity.name} sees it`, () => {
    const v = vmOn(rig, vm, n);
    return v && check(v) ? v : undefined;
  }, 30_000);
const migrate = async (vm: TVm, to: Node, watchers: Rig[]): Promise<void> => {
  vm.qemu = await liveMigrateAndQuit(t, vm.qemu, { managerDir: manager, qmpDir: qmpDir(to), name: vm.name, uuid: vm.uuid, disk: vm.disk, guest: vm.guest }, dir, async () => {
    await seenOn(watchers[0]!, vm, to, (v) => v.migration === 'incoming');
  });
  vm.node = to;
  // each watcher places the VM on `to` (the source node's report of it gone has arrived too)
  for (const w of watchers) {
    await until(`${vm.name} placed on ${to} by ${w.a.appliance.identity.name}`, async () => {
      const cl = (await w.a.call('viewer', 'GET', '/api/v1/clusters')).json() as ClusterView[];
      return cl.some((c) => c.vms.some((v) => v.id === vm.uuid && v.runsOn?.host === to)) ? true : undefined;
    }, 30_000);
  }
};
const addSource = async (rig: Rig, vm: TVm, extra: Record<string, unknown> = {}): Promise<{ statusCode: number; body: Record<string, unknown> }> => {
  const r = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: vm.uuid, name: vm.name, ...extra });
  return { statusCode: r.statusCode, body: r.json() as Record<string, unknown> };
};
const sourceOf = (rig: Rig, vm: TVm): string => rig.a.appliance.db.sources.value.find((s) => s.vm?.id === vm.uuid)!.id;
const backup = async (rig: Rig, vm: TVm): Promise<Job> => rig.job({ kind: 'backup', sourceId: sourceOf(rig, vm) });
const points = async (rig: Rig, vm: TVm): Promise<string[]> => (await rig.a.appliance.engine.listPoints(vm.name)).map((p) => p.id);
const rule = async (rig: Rig, vm: TVm, pointId: string): Promise<{ ok: boolean; problems: string[] }> => {
  const out = join(dir, `restore-${rig.a.appliance.identity.name}-${vm.name}-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: vm.name, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  const point = (await rig.a.appliance.engine.listPoints(vm.name)).find((p) => p.id === pointId);
  return checkGuestImage(vm.guest, out, dir, point?.consistency);
};
const remote = (rig: Rig): NodeJS.ProcessEnv => ({ SHADOWVAULT_URL: rig.url, SHADOWVAULT_TOKEN: rig.a.tokens.admin });
const hostOf = (j: Job): unknown => (j.result as { host?: string } | undefined)?.host;

await t.test('an agent started again with another appliance keeps its pairing and serves both', async (t) => {
  t.ok(await sees(A, 'n2'), 'n2 (paired with A, then started with B) is connected to A');
  t.ok(await sees(B, 'n2'), 'and to B');
  t.ok(await sees(A, 'n4') && await sees(B, 'n4'), 'n4 likewise, the other way round');
  t.notOk(hostId(B, 'n1'), 'n1 is paired with A only');
  t.not(A.a.appliance.identity.id, B.a.appliance.identity.id, 'two appliances, two identities');
});

await t.test('each appliance protects its VM; ownership is recorded on the host side', async (t) => {
  await seenOn(A, v1, 'n1');
  await seenOn(B, v2, 'n3');
  t.equal((await addSource(A, v1)).statusCode, 201, 'A protects v1');
  t.equal((await addSource(B, v2)).statusCode, 201, 'B protects v2');
  const a1 = await seenOn(A, v1, 'n1', (v) => v.protectedBy?.here === true);
  t.match(a1.protectedBy, { name: 'appliance-a', id: A.a.appliance.identity.id, here: true }, 'A: v1 protected here');
  const j1 = await backup(A, v1);
  const j2 = await backup(B, v2);
  t.equal(j1.state, 'succeeded', `A backs v1 up ${JSON.stringify(j1.error)}`);
  t.equal(j2.state, 'succeeded', `B backs v2 up ${JSON.stringify(j2.error)}`);
});

await t.test('after migrating to a node paired with both, a VM stays with its appliance; the other refuses it', async (t) => {
  await Promise.all([migrate(v1, 'n2', [A, B]), migrate(v2, 'n4', [B, A])]);
  const b1 = await seenOn(B, v1, 'n2', (v) => v.protectedBy !== undefined && v.protectedBy !== null);
  t.match(b1.protectedBy, { name: 'appliance-a', id: A.a.appliance.identity.id, here: false }, 'B lists v1 as protected by appliance-a');
  const listed = await cliJsonInProcess<VmView[]>(['vms', '--host', 'n2'], remote(B));
  t.match(listed.find((v) => v.id === v1.uuid)?.protectedBy, { name: 'appliance-a', here: false }, '`vms --json` on B: protectedBy appliance-a');
  const cl = await cliInProcess(['clusters'], remote(B));
  t.match(cl.stdout, new RegExp(`${v1.uuid}  v1  on n2 .*unprotected, protected by "appliance-a"`, 'u'), `\`clusters\` on B too: ${cl.stdout.trim()}`);
  const refused = await cliInProcess(['sources', 'add', '--vm', v1.uuid], remote(B));
  t.not(refused.code, 0, 'B: sources add --vm v1 is refused');
  t.match(refused.stderr, /SV_ERR_AGENT_VM_OWNED.*appliance-a/u, `the error names the owner: ${refused.stderr.trim()}`);
  const a2 = await addSource(A, v2);
  t.equal(a2.statusCode, 409, 'A refuses v2 likewise');
  t.match(a2.body, { code: 'SV_ERR_AGENT_VM_OWNED', details: { ownerName: 'appliance-b' } });
  const j1 = await backup(A, v1);
  t.equal(j1.state, 'succeeded', `A backs v1 up on n2 ${JSON.stringify(j1.error)}`);
  t.equal(hostOf(j1), 'n2', 'on the node it moved to');
  t.match((j1.result as { disks: unknown[] }).disks[0], { tracking: { method: 'bitmap' } }, 'incremental from the bitmap the migration carried');
  const j2 = await backup(B, v2);
  t.equal(j2.state, 'succeeded', `B backs v2 up on n4 ${JSON.stringify(j2.error)}`);
  t.equal(hostOf(j2), 'n4');
});

await t.test('admin takeover: logged and shown; the old owner is refused by the host, wherever the VM goes', async (t) => {
  const taken = await cliInProcess(['sources', 'add', '--vm', v1.uuid, '--take-over', '--json'], remote(B));
  t.equal(taken.code, 0, `B: sources add --vm v1 --take-over ${taken.stderr}`);
  t.match(JSON.parse(taken.stdout || '{}'), { vm: { id: v1.uuid, takenOver: { from: { name: 'appliance-a', id: A.a.appliance.identity.id } } } }, 'the source records whom it was taken from');
  const onA = await seenOn(A, v1, 'n2', (v) => v.protectedBy?.here === false);
  t.match(onA.protectedBy, { name: 'appliance-b', takenOverFrom: { name: 'appliance-a' } }, 'A: vms shows v1 taken over by appliance-b');
  const shown = await cliInProcess(['vms', '--host', 'n2'], remote(A));
  t.match(shown.stdout, /protected by "appliance-b" .*\(taken over from "appliance-a" at /u, '`vms` on A says so');
  const jb = await backup(B, v1);
  t.equal(jb.state, 'succeeded', `B backs v1 up ${JSON.stringify(jb.error)}`);
  const ja = await backup(A, v1);
  t.equal(ja.state, 'failed', 'A\'s backup of v1 fails');
  t.equal(ja.error?.code, 'SV_ERR_AGENT_VM_OWNED', `refused by the host: ${ja.error?.message}`);
  // back to n1, a node only A's agent serves: still B's, A still refused
  await migrate(v1, 'n1', [A]);
  const ja2 = await backup(A, v1);
  t.equal(ja2.error?.code, 'SV_ERR_AGENT_VM_OWNED', 'on a node paired with A only, A is refused too');
  // A removes its source: that does not release B's VM
  t.equal((await A.a.call('admin', 'DELETE', `/api/v1/sources/${sourceOf(A, v1)}`)).statusCode, 204);
  await migrate(v1, 'n2', [A, B]);
  t.match((await seenOn(B, v1, 'n2')).protectedBy, { here: true, takenOverFrom: { name: 'appliance-a' } }, 'B still owns v1');
  const jb2 = await backup(B, v1);
  t.equal(jb2.state, 'succeeded', `B's next backup of v1 ${JSON.stringify(jb2.error)}`);
});

await t.test('removing the source releases the VM: the other appliance protects it without a takeover', async (t) => {
  t.equal((await B.a.call('admin', 'DELETE', `/api/v1/sources/${sourceOf(B, v2)}`)).statusCode, 204, 'B removes v2');
  await seenOn(A, v2, 'n4', (v) => v.protectedBy === null);
  t.pass('A sees v2 free');
  t.equal((await addSource(A, v2, { attach: false })).statusCode, 201, 'A protects v2');
  const j = await backup(A, v2);
  t.equal(j.state, 'succeeded', `A backs v2 up ${JSON.stringify(j.error)}`);
  t.match((await seenOn(B, v2, 'n4', (v) => v.protectedBy?.here === false)).protectedBy, { name: 'appliance-a' }, 'B sees v2 protected by appliance-a now');
});

await t.test('a release no host can take is kept and done when a host reporting the VM comes back (its agent killed -9)', async (t) => {
  // v2 (A's now) runs on n4, the only node that reports it; n4's agent dies, A removes its source meanwhile
  await agents.n4!.kill9();
  await until('n4 gone from A', () => (A.a.appliance.agents.connected(hostId(A, 'n4')!) ? undefined : true), 30_000);
  t.equal((await A.a.call('admin', 'DELETE', `/api/v1/sources/${sourceOf(A, v2)}`)).statusCode, 204, 'A removes v2 while its host is down');
  t.match(A.a.appliance.db.ownerReleases.value, [{ vmId: v2.uuid }], 'the release is kept (owner-releases.json), not forgotten');
  agents.n4 = agentOf('n4', A); // its pairings kept: serves A and B again
  await seenOn(B, v2, 'n4', (v) => v.protectedBy === null);
  t.pass('once n4 is back, B sees v2 free: the release was retried and done');
  await until('the pending release gone', () => (A.a.appliance.db.ownerReleases.value.length === 0 ? true : undefined), 30_000);
  t.same(A.a.appliance.db.ownerReleases.value, [], 'and no longer pending');
  const again = await addSource(A, v2, { attach: true });
  t.equal(again.statusCode, 201, 'A protects v2 again (claims it)');
  await seenOn(A, v2, 'n4', (v) => v.protectedBy?.here === true);
});

await t.test('each point is in exactly one store, and restores', async (t) => {
  const [a1, b1, a2, b2] = await Promise.all([points(A, v1), points(B, v1), points(A, v2), points(B, v2)]);
  t.equal(a1.length, 2, 'v1: A holds its two points from before the takeover (none after)');
  t.equal(b1.length, 2, 'v1: B holds the two since');
  t.equal(b2.length, 2, 'v2: B holds its two points from before the release');
  t.equal(a2.length, 1, 'v2: A holds the one since');
  const all = [...a1, ...b1, ...a2, ...b2];
  t.equal(new Set(all).size, all.length, 'no point in two stores');
  for (const [rig, vm, id] of [[A, v1, a1.at(-1)!], [B, v1, b1.at(-1)!], [B, v2, b2.at(-1)!], [A, v2, a2[0]!]] as const) {
    const r = await rule(rig, vm, id);
    t.ok(r.ok, `${vm.name} point ${id} of ${rig.a.appliance.identity.name} passes the ${vm.guest} guest's rule ${r.problems.join('; ')}`);
  }
});
