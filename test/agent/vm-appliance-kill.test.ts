/**
 * The APPLIANCE killed (kill -9) in the middle of a VM backup: the appliance is a real `shadowvault serve`
 * process, the host agent a real agent process (test/helpers/agent-child.ts), QEMU TCG runs the writer guest.
 * Each round: the guest's disk gets 8 MiB of fresh random changes, a backup starts, and once its log says
 * the engine is reading the view, the appliance gets SIGKILL. Then, before the appliance is back:
 *   - the agent noticed the channel drop and aborted the view: no export or node of ours in QEMU, the disk's
 *     tracking bitmap is the one of the last point and records (the frozen one was merged back);
 *   - the VM is running (never left paused).
 * The appliance restarts on the same data dir and port; the agent reconnects with its credential:
 *   - the appliance's retry of the killed job is waited for (not raced); no half point was published (only
 *     the retry's complete one, if it succeeded), the earlier points are intact (they restore and pass the
 *     writer rule);
 *   - the next backup completes by the bitmap, and its restored disk passes the writer rule.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { isOurs, isTrackingBitmap } from '../../src/hypervisor/qemu/names.js';
import { queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import { api, serve, type Served } from '../api/serve-helper.js';
import { tempDir } from '../helpers/env.js';
import { startVm } from '../helpers/vm.js';
import { checkWriterImage, makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { until } from './helpers.js';
import { startAgentChild } from './vm-e2e-helpers.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const MiB = 1 << 20;
const ROUNDS = Number(process.env.SV_APPLIANCE_KILL_ROUNDS ?? 2);

const dir = tempDir(t, 'sv-vm-akill-');
const vmDir = join(dir, 'vms');
mkdirSync(vmDir);
const disk = makeWriterDisk(join(vmDir, 'disk.raw'), 'raw');
const agentQmp = join(dir, 'agent.qmp');
const vm = await startVm(t, { dir, name: 'writer', disks: [{ path: disk, format: 'raw' }], extraArgs: ['-qmp', `unix:${agentQmp},server=on,wait=off`] });
await waitForHeader(disk, 300);

/** A free loopback port (the appliance restarts on the same one: the agent dials the same URL). */
const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const a = s.address();
    s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
  });
});
const dataDir = join(dir, 'data');
let appliance: Served;
const startAppliance = async (): Promise<Served> => {
  const s = await serve(['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`]);
  t.teardown(() => {
    if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  });
  return s;
};
appliance = await startAppliance();
const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
const call = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
  const r = await api<T>(appliance, token, method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
};

const code = (await call<{ code: string }>('POST', '/api/v1/agents/pairing', {})).code;
const agent = startAgentChild(t, { appliance: appliance.url, pair: code, dataDir: join(dir, 'agent'), qmp: [agentQmp], stateDir: join(dir, 'agent-state'), restoreRoots: [], idleMs: 60_000 });
await agent.connected();
const vmListed = async (): Promise<true | undefined> => ((await call<Array<{ id: string }>>('GET', '/api/v1/vms')).some((v) => v.id === VM_ID) ? true : undefined);
await until('the VM in the inventory', vmListed, 30_000);
const source = await call<{ id: string }>('POST', '/api/v1/sources', { vm: 'writer' });

const FINAL = ['succeeded', 'failed', 'cancelled', 'interrupted'];
interface JobView { id: string; state: string; retryOf?: string; error?: { code: string }; result?: { pointId: string; disks: Array<{ tracking?: { method: string } }> } }
const job = (id: string): Promise<JobView> => call<JobView>('GET', `/api/v1/jobs/${id}`);
const jobLog = async (id: string): Promise<string[]> => (await call<{ lines: Array<{ message: string }> }>('GET', `/api/v1/jobs/${id}/log`)).lines.map((l) => l.message);
async function backup(): Promise<NonNullable<JobView['result']>> {
  const started = await call<JobView>('POST', '/api/v1/jobs', { kind: 'backup', sourceId: source.id });
  const done = await until('the backup to finish', async () => {
    const j = await job(started.id);
    return FINAL.includes(j.state) ? j : undefined;
  }, 120_000);
  if (done.state !== 'succeeded' || !done.result) throw new Error(`backup ${done.state}: ${JSON.stringify(done.error)}`);
  return done.result;
}
const pointIds = async (): Promise<string[]> => (await call<Array<{ id: string }>>('GET', `/api/v1/sources/${source.id}/points`)).map((p) => p.id);

/** Download a point's disk (raw) and check the writer rule on it. */
async function restoredRule(pointId: string): Promise<ReturnType<typeof checkWriterImage>> {
  const r = await fetch(`${appliance.url}/api/v1/sources/${source.id}/points/${pointId}/disks/vblk0/image`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) });
  if (r.status !== 200) throw new Error(`download ${pointId}: ${r.status} ${await r.text()}`);
  const out = join(dir, `restored-${pointId}.raw`);
  writeFileSync(out, Buffer.from(await r.arrayBuffer()));
  return checkWriterImage(out);
}

async function trackingBitmaps(): Promise<Array<{ name?: string; recording: boolean }>> {
  const node = (await queryNamedBlockNodes(vm.qmp)).find((n) => n['node-name'] === 'disk0');
  return (node?.['dirty-bitmaps'] ?? []).filter((b) => isTrackingBitmap(b.name));
}

t.test('the appliance killed mid-backup of a VM source', async (t) => {
  await backup();
  for (let round = 0; round < ROUNDS; round++) {
    const before = await pointIds();
    const [bitmap] = await trackingBitmaps();
    const chunk = join(dir, 'chunk.bin');
    writeFileSync(chunk, randomBytes(8 * MiB));
    await vm.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -s ${chunk} ${16 * MiB} ${8 * MiB}"` });
    const started = await call<JobView>('POST', '/api/v1/jobs', { kind: 'backup', sourceId: source.id });
    await until('the transfer to start', async () => ((await jobLog(started.id)).some((l) => /^disk .*: (bitmap|digest|initial)/.test(l)) ? true : undefined), 60_000);
    appliance.proc.kill('SIGKILL');
    await appliance.exited;
    await until('the agent to abort the view', async () => ((await queryBlockExports(vm.qmp)).length === 0 && !(await queryNamedBlockNodes(vm.qmp)).some((n) => isOurs(n['node-name'])) ? true : undefined), 30_000);
    t.pass(`round ${round}: no export and no node of the view left in QEMU while the appliance is down`);
    t.same((await trackingBitmaps()).map((b) => [b.name, b.recording]), [[bitmap?.name, true]], `round ${round}: the last point's bitmap tracks again (frozen one merged back)`);
    t.match(await queryStatus(vm.qmp), { status: 'running' }, `round ${round}: the VM is running`);
    appliance = await startAppliance();
    await agent.connected();
    await until('the VM in the inventory again', vmListed, 30_000);
    // The restarted appliance retries the killed job (a new job, retryOf): wait for it to end instead of
    // racing it (a retry that publishes its point while the points are listed, or still runs next round).
    const retry = await until('the retry of the killed job', async () => (await call<JobView[]>('GET', '/api/v1/jobs?kind=backup')).find((x) => x.retryOf === started.id), 60_000);
    const retried = await until('the retry to end', async () => {
      const x = await job(retry.id);
      return FINAL.includes(x.state) ? x : undefined;
    }, 120_000);
    const after = await pointIds();
    const published = retried.state === 'succeeded' && retried.result ? [retried.result.pointId] : [];
    t.same([...after].sort(), [...before, ...published].sort(), `round ${round}: no half point published (the retry ${retried.state}${retried.error ? ` ${retried.error.code}` : ''}), earlier points intact`);
    const j = await job(started.id);
    t.not(j.state, 'succeeded', `round ${round}: the killed job did not succeed (${j.state})`);
    await sleep(10);
  }
  const next = await backup();
  t.equal(next.disks[0]?.tracking?.method, 'bitmap', 'the next backup uses the bitmap');
  const rule = await restoredRule(next.pointId);
  t.ok(rule.ok, `the next point passes the writer rule ${rule.problems.join('; ')}`);
  const first = (await pointIds())[0]!;
  t.ok((await restoredRule(first)).ok, 'the first point still restores and passes the rule');
});
