/**
 * The APPLIANCE killed (kill -9) while it claims or releases a VM's ownership (issue 11 §4; the agent's side is
 * test/agent/owner-kill.test.ts): appliance A is a real `shadowvault serve` process, B a real appliance in this
 * process, one host agent (a child process) paired with both, a writer-guest VM (TCG) whose ownership record lies
 * beside its disk (src/agent/owner.ts).
 *
 * Each round A adds the VM's source (a claim on the host) or removes it (a release), and is killed with SIGKILL
 * a different number of milliseconds after the request was sent (SV_OWNER_APPLIANCE_KILL_ROUNDS, default 4; 12
 * with SHADOWVAULT_SOAK=1). A restarts on the same data dir and port, the agent reconnects, A's pending releases
 * (owner-releases.json) are retried after the agent's inventory push. Then:
 *   - A protects the VM (its source exists) and the record names A (after A's next backup, which claims it when
 *     the claim never reached the host), and B is refused (SV_ERR_AGENT_VM_OWNED); or A does not protect it,
 *     nothing of A's is pending, the record is gone, and B protects it without a takeover (then lets it go);
 *   - a claim whose source A never saved (killed between the two) is released, not left owning the VM;
 *   - the VM runs (never paused) with no export of ours; A's earlier points are all still listed, and its next
 *     point restores and passes the writer rule.
 * Then the source is removed and added again with attach: the first point (made under the first source) is
 * fetched by its disk name through every API route and CLI command that takes one.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { readOwner } from '../../src/agent/owner.js';
import { closePool } from '../../src/pool/index.js';
import { queryBlockExports, queryStatus } from '../../src/qemu/qmp-commands.js';
import { prng } from '../../bench/data.js';
import { api, serve, type Served } from '../api/serve-helper.js';
import { rounds } from '../helpers/soak.js';
import { startVm } from '../helpers/vm.js';
import { checkWriterImage, makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { until } from '../agent/helpers.js';
import { cliInProcess } from '../helpers/cli.js';
import { startAgentChild, startRig } from '../agent/vm-e2e-helpers.js';

const VM_ID = '0e4e7a00-0000-4000-8000-0000000000c1';
const ROUNDS = Number(process.env.SV_OWNER_APPLIANCE_KILL_ROUNDS ?? rounds(4, 12));
t.teardown(() => closePool());

const B = await startRig(t, { name: 'appliance-b' });
const dir = B.dir;
const vmDir = join(dir, 'vms');
mkdirSync(vmDir);
const disk = makeWriterDisk(join(vmDir, 'w.raw'), 'raw');
const agentQmp = join(dir, 'agent.qmp');
const vm = await startVm(t, { dir, name: 'w', uuid: VM_ID, memoryMb: 32, disks: [{ path: disk, format: 'raw' }], extraArgs: ['-qmp', `unix:${agentQmp},server=on,wait=off`] });
const ringFull = waitForHeader(disk, 300, 'raw', 240_000);
const record = (): ReturnType<typeof readOwner> => readOwner({ id: VM_ID, disks: [{ path: disk }] } as unknown as Parameters<typeof readOwner>[0]);

/** A free loopback port: A restarts on the same one (the agent dials the same URL). */
const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const a = s.address();
    s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
  });
});
const dataDir = join(dir, 'appliance-a');
/** A's log lines of each run (its killed runs' too), for a failed round's diagnosis. */
const logsOfA: Record<string, unknown>[][] = [];
const ownershipLog = (): string => logsOfA.map((lines, run) => lines.filter((l) => /owner|release|claim|source/iu.test(JSON.stringify(l)))
  .map((l) => `run ${run} ${String(l.time)} ${String(l.msg)} ${JSON.stringify({ ...l, msg: undefined, time: undefined, pid: undefined, hostname: undefined, level: undefined })}`).join('\n')).join('\n');
const startA = async (): Promise<Served> => {
  const s = await serve(['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--name', 'appliance-a']);
  logsOfA.push(s.lines);
  t.teardown(() => {
    if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  });
  return s;
};
let A = await startA();
const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
const callA = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> => api<T>(A, token, method, path, body);

// the agent: paired with A, then started again with B (it keeps A's pairing and serves both)
const agentOpts = { dataDir: join(dir, 'agent'), qmp: [agentQmp], stateDir: join(dir, 'agent-state'), restoreRoots: [], idleMs: 60_000, name: 'h1' };
const first = startAgentChild(t, { ...agentOpts, appliance: A.url, pair: (await callA<{ code: string }>('POST', '/api/v1/agents/pairing', {})).json.code });
await first.connected();
await first.stop();
startAgentChild(t, { ...agentOpts, appliance: B.url, pair: await B.pairCode() });

const hostConnectedToA = async (): Promise<true | undefined> => {
  const r = await callA<Array<{ id: string; hostConnected?: boolean }>>('GET', '/api/v1/vms').catch(() => undefined);
  return r?.json.some((v) => v.id === VM_ID && v.hostConnected !== false) ? true : undefined;
};
const freeOnA = async (): Promise<true | undefined> => {
  const r = await callA<Array<{ id: string; protectedBy?: unknown }>>('GET', '/api/v1/vms').catch(() => undefined);
  return r?.json.some((v) => v.id === VM_ID && v.protectedBy === null) ? true : undefined;
};
await until('A sees the VM', hostConnectedToA, 60_000);
await B.waitVm(VM_ID);
await ringFull;

interface Source { id: string; vm?: { id: string } }
const sourceOfA = async (): Promise<Source | undefined> => (await callA<Source[]>('GET', '/api/v1/sources')).json.find((s) => s.vm?.id === VM_ID);
const pendingOfA = (): Array<{ vmId: string }> => {
  const f = join(dataDir, 'appliance', 'owner-releases.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) as Array<{ vmId: string }> : [];
};
const FINAL = ['succeeded', 'failed', 'cancelled', 'interrupted'];
interface JobView { id: string; state: string; error?: { code: string; message: string }; result?: { pointId: string } }
async function backupOnA(sourceId: string): Promise<JobView> {
  const started = await callA<JobView>('POST', '/api/v1/jobs', { kind: 'backup', sourceId });
  return until('A\'s backup to finish', async () => {
    const j = (await callA<JobView>('GET', `/api/v1/jobs/${started.json.id}`)).json;
    return FINAL.includes(j.state) ? j : undefined;
  }, 120_000);
}
const pointsOfA = async (sourceId: string): Promise<string[]> => (await callA<Array<{ id: string }>>('GET', `/api/v1/sources/${sourceId}/points`)).json.map((p) => p.id);
async function restoredRule(sourceId: string, pointId: string): Promise<ReturnType<typeof checkWriterImage>> {
  const r = await fetch(`${A.url}/api/v1/sources/${sourceId}/points/${pointId}/disks/vblk0/image`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) });
  if (r.status !== 200) throw new Error(`download ${pointId}: ${r.status} ${await r.text()}`);
  const out = join(dir, `restored-${pointId}.raw`);
  writeFileSync(out, Buffer.from(await r.arrayBuffer()));
  return checkWriterImage(out);
}

let firstPoint: string | undefined;
t.test('A protects the VM: claimed on the host, one point', async (t) => {
  const added = await callA<Source>('POST', '/api/v1/sources', { vm: VM_ID, name: 'w' });
  t.equal(added.status, 201, JSON.stringify(added.json));
  t.match(await record(), { appliance: { name: 'appliance-a' } }, 'the record names A');
  const j = await backupOnA(added.json.id);
  t.equal(j.state, 'succeeded', JSON.stringify(j.error));
  firstPoint = j.result?.pointId;
});

t.test('kill -9 of the appliance during a claim or a release: one owner, or none and nothing pending', async (t) => {
  const rand = prng(0x6f776b61);
  const seen: string[] = [];
  let points: string[] = await pointsOfA((await sourceOfA())!.id);
  for (let round = 0; round < ROUNDS; round++) {
    const src = await sourceOfA();
    const op = src ? 'release' : 'claim';
    // attach: the store holds the series of the source removed earlier; it continues
    const request = (src ? callA('DELETE', `/api/v1/sources/${src.id}`) : callA('POST', '/api/v1/sources', { vm: VM_ID, name: 'w', attach: true })).catch((e: unknown) => e);
    await sleep(Math.floor(rand() * 120));
    A.proc.kill('SIGKILL');
    await A.exited;
    await request;
    A = await startA();
    await until(`round ${round}: A sees the VM again`, hostConnectedToA, 60_000);
    // the pending releases are retried after the agent's inventory push
    await until(`round ${round}: nothing of A's pending`, () => (pendingOfA().length === 0 ? true : undefined), 60_000);
    const now = await sourceOfA();
    let rec = await record();
    seen.push(`round ${round} ${op}: A ${now ? 'protects the VM' : 'does not protect the VM'}, record ${rec ? rec.appliance.name : 'none'}`);
    if (now) {
      if (!rec) {
        const j = await backupOnA(now.id); // the claim never reached the host: the first backup claims
        t.equal(j.state, 'succeeded', `round ${round}: A's backup claims the VM ${JSON.stringify(j.error)}`);
        rec = await record();
      }
      t.match(rec, { appliance: { name: 'appliance-a' } }, `round ${round}: A protects the VM and the record names A`);
      const byB = await B.a.call('admin', 'POST', '/api/v1/sources', { vm: VM_ID, name: `w-b${round}` });
      t.equal(byB.statusCode, 409, `round ${round}: B is refused`);
      t.match(byB.json(), { code: 'SV_ERR_AGENT_VM_OWNED' });
      const listed = await pointsOfA(now.id);
      t.ok(points.every((p) => listed.includes(p)), `round ${round}: A's earlier points are all listed (${listed.length})`);
      points = listed;
    } else {
      t.equal(rec, undefined, `round ${round}: A does not protect the VM and no record is left (a claim without its source was released)`);
      if (rec) t.comment(`A's ownership log:\n${ownershipLog()}`);
      await until(`round ${round}: B sees the VM free`, () => (B.a.appliance.agents.vms().some((v) => v.id === VM_ID && v.hostConnected && v.protectedBy === null) ? true : undefined), 30_000);
      const byB = await B.a.call('admin', 'POST', '/api/v1/sources', { vm: VM_ID, name: `w-b${round}` });
      t.equal(byB.statusCode, 201, `round ${round}: B protects the VM without a takeover ${byB.body}`);
      t.match(await record(), { appliance: { name: 'appliance-b' } }, `round ${round}: the record names B`);
      t.equal((await B.a.call('admin', 'DELETE', `/api/v1/sources/${(byB.json() as { id: string }).id}`)).statusCode, 204, `round ${round}: B lets it go again`);
      t.equal(await record(), undefined, `round ${round}: free again`);
    }
    t.equal((await queryStatus(vm.qmp)).status, 'running', `round ${round}: the VM runs`);
    t.same(await queryBlockExports(vm.qmp), [], `round ${round}: no export left`);
  }
  t.comment(seen.join('\n'));
  let src = await sourceOfA();
  if (!src) {
    // A learns of B's release from the host's next inventory push: until then it refuses (SV_ERR_AGENT_VM_OWNED)
    await until('A sees the VM free', freeOnA, 60_000);
    const again = await callA<Source>('POST', '/api/v1/sources', { vm: VM_ID, name: 'w', attach: true });
    t.equal(again.status, 201, JSON.stringify(again.json));
    src = again.json;
  }
  const j = await backupOnA(src.id);
  t.equal(j.state, 'succeeded', `A's next backup ${JSON.stringify(j.error)}`);
  const all = await pointsOfA(src.id);
  t.ok(points.every((p) => all.includes(p)), `every earlier point of A is listed (${all.length})`);
  const r = await restoredRule(src.id, all.at(-1)!);
  t.ok(r.ok, `the last point restores and passes the writer rule ${r.problems.join('; ')}`);
});

t.test('removed and added again with attach: a point of the earlier source is fetched by disk name (API and CLI)', async (t) => {
  const src = await sourceOfA();
  if (src) t.equal((await callA('DELETE', `/api/v1/sources/${src.id}`)).status, 204, 'A removes the source');
  const again = await callA<Source>('POST', '/api/v1/sources', { vm: VM_ID, name: 'w', attach: true });
  t.equal(again.status, 201, JSON.stringify(again.json));
  const id = again.json.id;
  const old = firstPoint!; // made under the first source of the series
  t.ok((await pointsOfA(id)).includes(old), 'the first point is listed under the new source');
  const shown = await callA<{ disks: Array<{ name: string }> }>('GET', `/api/v1/sources/${id}/points/${old}`);
  t.same(shown.json.disks.map((d) => d.name), ['vblk0'], 'with the disk name it was made with');
  // API: the image download, the item-level routes and a restore job (the executor) take the disk by name
  const r = await restoredRule(id, old);
  t.ok(r.ok, `the image by disk name restores and passes the writer rule ${r.problems.join('; ')}`);
  const vols = await callA<{ volumes: unknown[] }>('GET', `/api/v1/sources/${id}/points/${old}/disks/vblk0/volumes`);
  t.equal(vols.status, 200, `the files route opens the disk by name ${JSON.stringify(vols.json)}`);
  const target = join(dataDir, 'restores', `api-${old}.raw`);
  const job = await callA<JobView>('POST', `/api/v1/sources/${id}/points/${old}/restore`, { disk: 'vblk0', target, format: 'raw' });
  t.equal(job.status, 202, JSON.stringify(job.json));
  const done = await until('the restore job', async () => {
    const j = (await callA<JobView>('GET', `/api/v1/jobs/${job.json.id}`)).json;
    return FINAL.includes(j.state) ? j : undefined;
  }, 120_000);
  t.equal(done.state, 'succeeded', `the restore job by disk name ${JSON.stringify(done.error)}`);
  t.ok(checkWriterImage(target).ok, 'its image passes the writer rule');
  const none = await callA<{ code: string; message: string; details: { disks: string[] } }>('GET', `/api/v1/sources/${id}/points/${old}/disks/vblk9/image`);
  t.equal(none.status, 404, 'a disk the point does not have');
  t.match(none.json, { code: 'SV_ERR_SYNC_DISK_NOT_FOUND', message: /no disk "vblk9" \(it has vblk0\)/, details: { disks: ['vblk0'] } }, 'is a coded error naming the disks it has');
  // CLI: restore --url (download, and on the appliance) and files --url, by disk name
  const env = { SHADOWVAULT_URL: A.url, SHADOWVAULT_TOKEN: token };
  const out = join(dir, `cli-${old}.raw`);
  const dl = await cliInProcess(['restore', `w@${old}`, '--disk', 'vblk0', '--out', out, '--format', 'raw'], env);
  t.equal(dl.code, 0, `restore --url --out --disk vblk0 ${dl.stderr}`);
  t.ok(dl.code === 0 && checkWriterImage(out).ok, 'the downloaded image passes the writer rule');
  const onA = await cliInProcess(['restore', `w@${old}`, '--disk', 'vblk0', '--target', join(dataDir, 'restores', `cli-${old}.raw`), '--format', 'raw'], env);
  t.equal(onA.code, 0, `restore --url --target --disk vblk0 ${onA.stderr}`);
  const files = await cliInProcess(['files', 'volumes', `w@${old}`, '--disk', 'vblk0', '--json'], env);
  t.equal(files.code, 0, `files volumes --url --disk vblk0 ${files.stderr}`);
  const bad = await cliInProcess(['files', 'volumes', `w@${old}`, '--disk', 'vblk9'], env);
  t.match(bad, { code: 1, stderr: /SV_ERR_SYNC_DISK_NOT_FOUND: .*no disk "vblk9" \(it has 0=vblk0\)/ }, 'the CLI names the disks too');
});
