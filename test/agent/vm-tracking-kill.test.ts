/**
 * Change tracking of the QEMU view after the host agent is killed with SIGKILL while its VM keeps running
 * (issue 11: session 7 found changes lost by the repair path for replicas; is the QEMU view hit too?).
 *
 * A real appliance, a real agent process, the writer guest on TCG. The agent reaches QEMU through a QMP trap
 * (test/helpers/qmp-trap.ts) that holds one chosen command of a backup, so that each round kills the agent at
 * an exact step, with QEMU having run that command or not:
 *   instant-sent / instant-lost   the bitmap switch of the point in time (`transaction`: the VM is paused
 *                                 by the agent, the device is on the copy-before-write filter)
 *   export                        publishing the view (`block-export-add`)
 *   reading                       while the appliance reads the view (a delay after the export appears)
 *   commit-sent / commit-lost     after the point is published, removing the frozen bitmap
 *                                 (`block-dirty-bitmap-remove`: the frozen and the next bitmap both exist)
 *   teardown                      releasing the view after the commit (`blockdev-del`)
 * Each round writes a marker block through the VM (qemu-io on the device, as the guest would) before the
 * backup and another after the kill. After each round, with the agent restarted:
 *   - the VM runs (never left paused) and no point was lost or published twice;
 *   - the NEXT point is taken with the VM paused by the test, its disk file copied at that moment, and the
 *     restored point is compared with that copy byte for byte (qemu-img compare) and checked with the writer
 *     rule; its tracking method is recorded: after a round whose job failed it must be incremental ('bitmap',
 *     from the frozen bitmap merged back), after a commit round it may be 'digest' (the appliance holds the
 *     next bitmap, the repaired disk tracks under the frozen one's name).
 * Finally one incremental point of the running guest passes the writer rule. Rounds: one per step by
 * default, 3 per step with SHADOWVAULT_SOAK=1.
 */
import { copyFileSync, createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { queryBlock, queryBlockExports, queryNamedBlockNodes, queryStatus } from '../../src/qemu/qmp-commands.js';
import { requireTool, run } from '../helpers/env.js';
import { startQmpTrap } from '../helpers/qmp-trap.js';
import { rounds as soakRounds } from '../helpers/soak.js';
import { startVm } from '../helpers/vm.js';
import { checkWriterImage, makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { until } from './helpers.js';
import { startAgentChild, startRig, type AgentProcess } from './vm-e2e-helpers.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const BS = 64 * 1024;

t.teardown(() => closePool());
const top = t;
const rig = await startRig(t);
const vmDir = join(rig.dir, 'vms');
mkdirSync(vmDir, { recursive: true });
const disk = makeWriterDisk(join(vmDir, 'disk.raw'), 'raw');
const qemuSide = join(rig.dir, 'agent-upstream.qmp');
const vm = await startVm(t, { dir: rig.dir, name: 'writer', disks: [{ path: disk, format: 'raw' }], extraArgs: ['-qmp', `unix:${qemuSide},server=on,wait=off`] });
await waitForHeader(disk, 300, 'raw', 240_000);
const trap = await startQmpTrap(t, join(rig.dir, 'agent.qmp'), qemuSide);

const agentOpts = { appliance: rig.url, dataDir: join(rig.dir, 'agent'), qmp: [trap.path], stateDir: join(rig.dir, 'agent-state'), restoreRoots: [], idleMs: 60_000 };
let agent: AgentProcess = startAgentChild(t, { ...agentOpts, pair: await rig.pairCode() });
await agent.connected();
await rig.waitVm(VM_ID);
const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: VM_ID, name: 'writer' });
t.equal(added.statusCode, 201, added.body);
const source = added.json() as { id: string; name: string };

interface PointResult { pointId: string; blocksChanged: number; disks: Array<{ tracking?: { method: string; reason?: string } }> }

async function points(): Promise<string[]> {
  return ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${source.id}/points`)).json() as { id: string }[]).map((p) => p.id);
}
async function restore(pointId: string): Promise<string> {
  const out = join(rig.dir, `restore-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return out;
}
async function marker(n: number): Promise<void> {
  const out = await vm.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -P ${(n % 200) + 20} ${(64 + n) * BS} ${BS}"` });
  if (typeof out === 'string' && /error/iu.test(out)) throw new Error(`qemu-io: ${out}`);
}
async function backup(): Promise<PointResult> {
  const job = await rig.job({ kind: 'backup', sourceId: source.id });
  if (job.state !== 'succeeded') throw new Error(`backup ${job.state}: ${JSON.stringify(job.error)} ${job.log.map((l) => l.message).join(' | ')}`);
  return job.result as unknown as PointResult;
}
/** A point of the VM paused by the test, restored and compared with the disk file copied at that moment. */
async function pausedPoint(): Promise<{ point: PointResult; same: boolean; diff: string; rule: ReturnType<typeof checkWriterImage> }> {
  await vm.qmp.execute('stop');
  const copy = join(rig.dir, 'source-at-point.raw');
  let point: PointResult;
  try {
    point = await backup();
    copyFileSync(disk, copy);
  } finally {
    await vm.qmp.execute('cont');
  }
  const restored = await restore(point.pointId);
  let same = true;
  let diff = '';
  try {
    run(requireTool('qemu-img'), ['compare', '-q', '-f', 'raw', '-F', 'raw', restored, copy]);
  } catch (err) {
    same = false;
    diff = String((err as { stdout?: string }).stdout ?? (err as Error).message).trim();
  }
  return { point, same, diff, rule: checkWriterImage(restored) };
}

/** The disk node's dirty bitmaps, for the log: name (recording or frozen). */
async function bitmaps(): Promise<string> {
  const b = (await queryBlock(vm.qmp)).find((x) => x.qdev?.includes('vblk0'));
  const node = b?.inserted?.['node-name'];
  const all = (await queryNamedBlockNodes(vm.qmp)).filter((n) => n['node-name'] === node || n['node-name'] === 'disk0');
  return all.flatMap((n) => (n['dirty-bitmaps'] ?? []).map((m) => `${n['node-name']}:${m.name}${m.recording ? '' : ' (frozen)'}`)).join(', ') || 'none';
}

type Step = 'instant-sent' | 'instant-lost' | 'export' | 'reading' | 'commit-sent' | 'commit-lost' | 'teardown';
const ALL: Step[] = ['instant-sent', 'instant-lost', 'export', 'reading', 'commit-sent', 'commit-lost', 'teardown'];
/** Debugging aid: SV_TRACKING_STEPS=a,b runs only those steps. */
const STEPS = process.env.SV_TRACKING_STEPS ? ALL.filter((s) => process.env.SV_TRACKING_STEPS!.split(',').includes(s)) : ALL;
const isSwitch = (c: string, a: Record<string, unknown> | undefined): boolean =>
  c === 'transaction' && JSON.stringify(a ?? {}).includes('block-dirty-bitmap-add');
const traps: Record<Exclude<Step, 'reading'>, { match: (c: string, a: Record<string, unknown> | undefined) => boolean; how: 'send' | 'drop' }> = {
  'instant-sent': { match: isSwitch, how: 'send' },
  'instant-lost': { match: isSwitch, how: 'drop' },
  export: { match: (c) => c === 'block-export-add', how: 'send' },
  'commit-sent': { match: (c) => c === 'block-dirty-bitmap-remove', how: 'send' },
  'commit-lost': { match: (c) => c === 'block-dirty-bitmap-remove', how: 'drop' },
  teardown: { match: (c) => c === 'blockdev-del', how: 'drop' },
};

await t.test('first point (initial) and one incremental, compared with the paused disk', async (t) => {
  await backup();
  const p = await pausedPoint();
  t.equal(p.point.disks[0]?.tracking?.method, 'bitmap');
  t.ok(p.same, `restored point = the disk at the point (qemu-img compare) ${p.diff}`);
});

await t.test('the agent killed at each step of a backup; the next point is byte-identical to the disk', async (t) => {
  const perStep = soakRounds(1, 3);
  let n = 0;
  for (let rep = 0; rep < perStep; rep++) {
    for (const step of STEPS) {
      const round = n++;
      const before = await points();
      await marker(2 * round);
      const trapped = step === 'reading' ? undefined : traps[step];
      const caught = trapped ? trap.arm(trapped.match, trapped.how) : undefined;
      const started = await rig.start({ kind: 'backup', sourceId: source.id });
      if (caught) {
        const answer = await caught;
        await agent.kill9();
        trap.release();
        if (answer) t.comment(`round ${round} (${step}): QEMU ran the caught command, the agent never saw its answer: ${answer}`);
      } else {
        await until(`round ${round}: the view exported`, async () => ((await queryBlockExports(vm.qmp)).some((e) => e.id.startsWith('sv-')) ? true : undefined), 60_000);
        await sleep(50 + 100 * rep);
        await agent.kill9();
      }
      const job = await rig.a.appliance.queue.waitFor(started.id);
      t.comment(`round ${round} (${step}): after the kill: ${await bitmaps()}`);
      const after = await points();
      const published = job.state === 'succeeded';
      if (published) t.equal(after.length, before.length + 1, `round ${round} (${step}): the point was published before the kill: one new point`);
      else t.same(after, before, `round ${round} (${step}): ${job.error?.code}: no point published, earlier points intact`);
      // its retry (queued with a delay) would stand in for this round's next point
      for (const j of rig.a.appliance.queue.list()) if (j.sourceId === source.id && j.state === 'queued') await rig.a.appliance.queue.cancel(j.id);
      await marker(2 * round + 1);
      agent = startAgentChild(top, agentOpts); // lives past this subtest (its teardown would stop it)
      await agent.connected();
      await rig.waitVm(VM_ID);
      await until(`round ${round}: VM resumed`, async () => ((await queryStatus(vm.qmp)).status === 'running' ? true : undefined), 30_000);
      t.comment(`round ${round} (${step}): after the restart: ${await bitmaps()}`);
      const exports = (await queryBlockExports(vm.qmp)).map((e) => e.id);
      t.same(exports, [], `round ${round} (${step}): no export left`);
      const p = await pausedPoint();
      const tracking = p.point.disks[0]?.tracking;
      t.comment(`round ${round} (${step}, job ${job.state}): next point ${tracking?.method}${tracking?.reason ? ` (${tracking.reason})` : ''}, ${p.point.blocksChanged} blocks changed`);
      if (!published) t.equal(tracking?.method, 'bitmap', `round ${round} (${step}): the next point is incremental from the repaired bitmap`);
      else t.ok(tracking?.method === 'bitmap' || tracking?.method === 'digest', `round ${round} (${step}): the next point is ${tracking?.method}`);
      t.ok(p.same, `round ${round} (${step}): restored next point = the disk at that point (qemu-img compare) ${p.diff}`);
      t.ok(p.rule.ok, `round ${round} (${step}): it passes the writer rule ${p.rule.problems.join('; ')}`);
    }
  }
  const running = await backup();
  t.equal(running.disks[0]?.tracking?.method, 'bitmap', 'a point of the running guest after the rounds is incremental');
  const rule = checkWriterImage(await restore(running.pointId));
  t.ok(rule.ok, `and passes the writer rule ${rule.problems.join('; ')}`);
  const ids = await points();
  const first = checkWriterImage(await restore(ids[0]!));
  t.ok(first.ok, 'the first point still restores and passes the rule');
});
