/**
 * End to end on the Hyper-V SIMULATION: a real appliance (engine thread), the real CLI agent process
 * (`shadowvault agent --driver hyperv-sim --sim-root DIR`), a simulated Hyper-V VM whose guest process writes
 * with the shared writer rule. One backup (application-consistent recovery checkpoint, full), an incremental
 * one (RCT: only changed blocks), then, with the VM off, a third whose restore `qemu-img compare`s equal to the
 * VM's VHDX; every restore passes the writer rule. Then (issue 14) the whole VM: every point keeps the VM's
 * configuration (the simulation's `.sim-vmcx.json`, labelled simulated), and `restore --to-host --import` writes
 * the configuration and the disks on the host through the agent and imports a new VM there, which starts.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { SimulatedHyperVHost } from '../../src/hypervisor/hyperv/simulated-host.js';
import { closePool } from '../../src/pool/index.js';
import { CLI, requireTool, run } from '../helpers/env.js';
import { cliInProcess } from '../helpers/cli.js';
import { waitForGuest } from '../helpers/hyperv-sim.js';
import { checkWriterImage } from '../helpers/writer-guest.js';
import { startRig } from './vm-e2e-helpers.js';

t.teardown(() => closePool());
const rig = await startRig(t);
const simRoot = join(rig.dir, 'hyperv-sim');
const host = new SimulatedHyperVHost(simRoot);
const vmId = await host.createVm({ name: 'hvwriter', disks: [64 << 20] });
await host.startVm(vmId);
t.teardown(() => host.stopVm(vmId));
await waitForGuest(host.store.dir(vmId), 300);

const agent = spawn(process.execPath, [CLI, 'agent', '--appliance', rig.url, '--pair', await rig.pairCode(), '--data-dir', join(rig.dir, 'agent'),
  '--name', 'hv-sim-host', '--driver', 'hyperv-sim', '--sim-root', simRoot, '--poll', '0.3', '--log-level', 'info', '--restore-root', join(rig.dir, 'host-restores')], { stdio: ['ignore', 'pipe', 'pipe'] });
let log = '';
agent.stdout!.on('data', (d: Buffer) => (log += d.toString()));
agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
const exited = new Promise<void>((r) => agent.once('exit', () => r()));
t.teardown(async () => {
  agent.kill('SIGTERM');
  const timer = setTimeout(() => agent.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(timer);
});
await rig.waitVm(vmId);

const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: 'hvwriter' });
t.equal(added.statusCode, 201, added.body);
const source = added.json() as { id: string; name: string };

interface PointResult { pointId: string; consistency: string; reasons: string[]; pauseMs?: number; blocksChanged: number; disks: Array<{ tracking?: { method: string; reason?: string } }> }

async function backup(): Promise<PointResult> {
  const job: Job = await rig.job({ kind: 'backup', sourceId: source.id });
  if (job.state !== 'succeeded') throw new Error(`backup ${job.state}: ${JSON.stringify(job.error)} ${job.log.map((l) => l.message).join(' | ')}\nagent: ${log.slice(-3000)}`);
  return job.result as unknown as PointResult;
}

async function restore(pointId: string): Promise<string> {
  const out = join(rig.dir, `restore-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return out;
}

t.test('the agent says it runs the simulation', async (t) => {
  t.match(log, /Hyper-V SIMULATION \(hyperv-sim\)/u);
  t.match(log, /hyper-v hyperv-sim \(simulation\)/u);
});

t.test('backup, incremental backup (RCT), backup of the stopped VM; restores by the rule and qemu-img compare', async (t) => {
  const first = await backup();
  t.equal(first.consistency, 'application', 'online: application-consistent recovery checkpoint');
  t.equal(first.disks[0]!.tracking?.method, 'initial');
  const r1 = checkWriterImage(await restore(first.pointId));
  t.same(r1.problems, [], `first point: header ${r1.header}`);

  await waitForGuest(host.store.dir(vmId), r1.header + 20);
  const second = await backup();
  t.not(second.disks[0]!.tracking?.method, 'digest', `incremental through RCT: ${JSON.stringify(second.disks[0]!.tracking)}`);
  t.ok(second.blocksChanged > 0 && second.blocksChanged <= 8, `only the changed blocks: ${second.blocksChanged}`);
  const r2 = checkWriterImage(await restore(second.pointId));
  t.same(r2.problems, [], `second point: header ${r2.header}`);
  t.ok(r2.header > r1.header);

  await host.stopVm(vmId);
  const third = await backup();
  t.equal(third.consistency, 'offline');
  t.equal(third.pauseMs, 0, 'a VM that is off is not paused');
  const out = await restore(third.pointId);
  t.same(checkWriterImage(out).problems, []);
  const base = (await host.listVms()).find((v) => v.id === vmId)!.disks[0]!.basePath;
  run(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'vhdx', out, base]);
  t.pass('qemu-img compare: the restored point equals the VM\'s VHDX');
  t.same(await host.listCheckpoints(vmId), [], 'no checkpoint left on the simulated host');
  // The clusters work's ownership record (src/agent/owner.ts), beside the VHDX on the (shared) storage.
  const record = JSON.parse(readFileSync(join(dirname(base), `.shadowvault-owner.${vmId}.json`), 'utf8')) as { vmId: string; appliance: { id: string } };
  t.equal(record.vmId, vmId, 'the VM\'s ownership record names this appliance as its protector');
  thirdPoint = { id: third.pointId, restored: out, header: checkWriterImage(out).header };
});

let thirdPoint: { id: string; restored: string; header: number } | undefined;

t.test('whole VM: the configuration is kept with each point; restore --to-host --import imports a VM that starts', async (t) => {
  if (!thirdPoint) return t.fail('the backups above failed');
  const points = (await rig.a.call('viewer', 'GET', `/api/v1/sources/${source.id}/points`)).json() as Array<{ id: string; configuration?: { format: string; simulated: boolean; version: string; files: Array<{ name: string; size: number; sha256: string }> } }>;
  for (const p of points) {
    t.equal(p.configuration?.format, 'hyperv-sim-json', `point ${p.id} keeps the configuration`);
    t.equal(p.configuration?.simulated, true, 'labelled as the simulation\'s');
    t.same(p.configuration?.files.map((f) => f.name), [`${vmId}.sim-vmcx.json`]);
  }
  const cli = await cliInProcess(['restore', `hvwriter@${thirdPoint.id}`, '--url', rig.url, '--to-host', '--import', '--json'], { SHADOWVAULT_TOKEN: rig.a.tokens.operator });
  t.equal(cli.code, 0, `${cli.stderr}\nagent: ${log.slice(-2000)}`);
  const res = JSON.parse(cli.stdout) as { vmId: string; name: string; folder: string; host: string };
  t.not(res.vmId, vmId, 'a new VM id (Import-VM -GenerateNewId)');
  t.equal(res.host, 'hv-sim-host');
  t.ok(res.folder.startsWith(join(rig.dir, 'host-restores')), `imported under the agent's restore root: ${res.folder}`);
  t.notOk(existsSync(join(res.folder, '.shadowvault-import')), 'the unfinished-import marker is gone once imported');
  const imported = (await host.listVms()).find((v) => v.id === res.vmId);
  t.ok(imported, 'the simulated host lists the imported VM');
  if (!imported) return;
  t.equal(imported.name, 'hvwriter');
  t.equal(imported.state, 'Off');
  run(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'vhdx', thirdPoint.restored, imported.disks[0]!.basePath]);
  t.pass('qemu-img compare: the imported VM\'s disk equals the point');
  await host.startVm(res.vmId);
  t.teardown(() => host.stopVm(res.vmId));
  await waitForGuest(host.store.dir(res.vmId), thirdPoint.header + 3);
  t.equal((await host.listVms()).find((v) => v.id === res.vmId)?.state, 'Running', 'the imported VM starts and its guest writes');

  const target = join(rig.dir, 'data', 'restores', 'whole-vm');
  const whole = await rig.a.call('operator', 'POST', `/api/v1/sources/${source.id}/points/${thirdPoint.id}/restore`, { target });
  t.equal(whole.statusCode, 202, whole.body);
  const done = await rig.a.appliance.queue.waitFor((whole.json() as Job).id);
  t.equal(done.state, 'succeeded', JSON.stringify(done.error));
  t.match((done.result as { files: string[] }).files.map((f) => basename(f)), [/\.img$/u, `${vmId}.sim-vmcx.json`, 'shadowvault-configuration.json'], 'a whole-VM restore on the appliance writes the configuration beside the disks');
  t.match(JSON.parse(readFileSync(join(target, `${vmId}.sim-vmcx.json`), 'utf8')), { simulation: /simulated/u, name: 'hvwriter' });
});
