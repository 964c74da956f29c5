/**
 * VMs on an SMB 3.0 file server, end to end, with real Samba: a real appliance, a host agent (the VM's
 * host: QEMU over QMP, its share given with --smb-share, the check as its machine account `host-a$`), a file
 * server's agent (--file-server --share), real `smbd` on a private loopback port serving the share, and a
 * writer VM (TCG) whose disk lies in the share's folder (opened by QEMU at the local path: no CIFS mount on
 * this machine kind).
 *
 * - refused rights, through Samba: the folder read-only for the account, then the share closed to it: each
 *   shown in `vms --json` under online.unmet (share, folder, right) and the backup refused with
 *   SV_ERR_SMB_RIGHTS_MISSING before any point in time (no overlay made);
 * - allowed rights: a backup and an incremental (tracking: bitmap) taken by checkpoint and merge, the data
 *   read by the file server's agent (bytes on its channel, next to nothing on the host's), each restored
 *   point passing the writer rule; nothing left (no overlay, the device on its disk);
 * - the Linux guest (ext4, qemu-ga, checksummed files; test/helpers/linux-guest.ts), its disk in the same
 *   folder, behind the same host agent: an application-consistent point by checkpoint and merge (the guest frozen
 *   through qemu-ga), read by the file server's agent, whose restore passes `e2fsck -fn` (no journal replay) and
 *   the checksums;
 * - kill -9 of the host agent during a backup (rounds counted): the restarted agent merges the checkpoint
 *   back, the VM runs, the next backup succeeds; then one round during a backup of the Linux guest: merged
 *   back, the guest runs, its earlier points restore, and its next point is application-consistent (the guest
 *   was thawed) and passes `e2fsck -fn` and the checksums.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, chmodSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { queryBlock, queryStatus } from '../../src/qemu/qmp-commands.js';
import { folderFor, startSamba } from '../helpers/samba.js';
import { rounds } from '../helpers/soak.js';
import { checkLinuxImage, linuxVmOptions, makeExt4Disk, waitForGuestFiles } from '../helpers/linux-guest.js';
import { LINUX_PACE_S } from '../helpers/guests.js';
import { startVm } from '../helpers/vm.js';
import { checkWriterImage, makeWriterDisk, waitForHeader } from '../helpers/writer-guest.js';
import { until } from '../agent/helpers.js';
import { backupAtMoment, startAgentChild, startRig, type AgentProcess } from '../agent/vm-e2e-helpers.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
const BS = 64 * 1024;
t.teardown(() => closePool());
const top = t;

const rig = await startRig(t);
const samba = await startSamba(t);
const hostA = await samba.addAccount('host-a$');
const other = await samba.addAccount('host-b$');
const shareRoot = join(rig.dir, 'fileserver', 'vmstore');
mkdirSync(shareRoot, { recursive: true });
chmodSync(rig.dir, 0o711); // smbd serves the share as the account's uid: the path to it must be traversable
const folder = folderFor(join(shareRoot, 'vms'), hostA.uid, 0o700);
const open = [{ name: 'vmstore', path: shareRoot, validUsers: [hostA.name, other.name] }];
await samba.setShares(open);
const disk = makeWriterDisk(join(folder, 'writer.raw'), 'raw');
const DATA = 4 << 20; // incompressible data beyond the guest's ring: a full backup carries it
const fd = openSync(disk, 'r+');
writeSync(fd, randomBytes(DATA), 0, DATA, 16 << 20);
closeSync(fd);
const agentQmp = join(rig.dir, 'host-a.qmp');
const vm = await startVm(t, { dir: rig.dir, name: 'writer', disks: [{ path: disk, format: 'raw' }], extraArgs: ['-qmp', `unix:${agentQmp},server=on,wait=off`] });
// the Linux guest boots meanwhile (its files are awaited by its subtest)
const LINUX_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d22';
const linuxDisk = makeExt4Disk(join(folder, 'linux.raw'));
const linuxQmp = join(rig.dir, 'host-a-linux.qmp');
const linuxOpts = linuxVmOptions(rig.dir, 'linux', { paceS: LINUX_PACE_S });
const linux = await startVm(t, { dir: rig.dir, name: 'linux', uuid: LINUX_ID, ...linuxOpts, disks: [{ path: linuxDisk, format: 'raw' }], extraArgs: ['-qmp', `unix:${linuxQmp},server=on,wait=off`] });

const fileServer = startAgentChild(t, {
  appliance: rig.url, pair: await rig.pairCode(), dataDir: join(rig.dir, 'fs-agent'), qmp: [], stateDir: join(rig.dir, 'fs-state'), restoreRoots: [],
  name: 'files1', served: { vmstore: shareRoot },
});
const hostOpts = {
  appliance: rig.url, dataDir: join(rig.dir, 'host-agent'), qmp: [agentQmp, linuxQmp], stateDir: join(rig.dir, 'host-state'), restoreRoots: [], idleMs: 60_000,
  name: 'host-a', smbShares: [`${samba.unc('vmstore')}=${shareRoot}`], smbCredentials: hostA.credentials,
};
let host: AgentProcess = startAgentChild(t, { ...hostOpts, pair: await rig.pairCode() });
await Promise.all([fileServer.connected(), host.connected()]);
await waitForHeader(disk, 300, 'raw', 240_000);
await rig.waitVm(VM_ID);
const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: 'writer' });
t.equal(added.statusCode, 201, added.body);
const source = added.json() as { id: string; name: string };
const agentId = (name: string): string => rig.a.appliance.agents.registry.list().find((a) => a.name === name)!.id;

interface Unmet { requirement: string; reason: string; share?: string; folder?: string; right?: string }
const unmet = async (): Promise<Unmet[]> => {
  const vms = (await rig.a.call('viewer', 'GET', '/api/v1/vms')).json() as Array<{ id: string; online: { unmet: string[]; details: Unmet[] } }>;
  return vms.find((v) => v.id === VM_ID)?.online.details.filter((d) => d.requirement === 'share-permissions') ?? [];
};
const overlays = (): string[] => readdirSync(folder).filter((f) => f.startsWith('sv-'));
const points = async (): Promise<string[]> => ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${source.id}/points`)).json() as { id: string }[]).map((p) => p.id);
const backup = (): Promise<Job> => rig.job({ kind: 'backup', sourceId: source.id });
async function rule(pointId: string): Promise<string[]> {
  const out = join(rig.dir, `restore-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return checkWriterImage(out).problems;
}
async function onItsDisk(): Promise<boolean> {
  return (await queryBlock(vm.qmp)).find((b) => b.qdev)?.inserted?.file === disk;
}
let linuxSourceId = '';
/** The Linux guest's rule on a point: e2fsck -fn clean (without a journal replay: its points are online) and the checksums. */
async function linuxRule(pointId: string): Promise<ReturnType<typeof checkLinuxImage>> {
  const out = join(rig.dir, `restore-linux-${pointId}.raw`);
  const img = await rig.a.appliance.engine.exportImage({ source: 'linux', pointId, disk: 0, format: 'raw' }, new AbortController().signal);
  await pipeline(img.stream(), createWriteStream(out));
  return checkLinuxImage(out, rig.dir);
}
const linuxOnItsDisk = async (): Promise<boolean> => (await queryBlock(linux.qmp)).find((b) => b.qdev)?.inserted?.file === linuxDisk;
const cancelQueued = async (sourceId: string): Promise<void> => {
  // a killed job's retry (queued with a delay) would stand in for the next job: cancel it
  const queue = rig.a.appliance.queue;
  for (const j of queue.list()) if (j.sourceId === sourceId && j.state === 'queued') await queue.cancel(j.id);
};

t.test('refused rights are reported before any backup, and the backup is refused', async (t) => {
  chmodSync(folder, 0o500); // the account may list the folder, not create in it
  const write = await until('share-permissions unmet (write)', async () => ((await unmet()).some((u) => u.right === 'write') ? unmet() : undefined), 30_000);
  t.match(write, [{ share: samba.unc('vmstore'), folder: 'vms', right: 'write', reason: /host-a\$ cannot create files in folder "vms" of share .*NT_STATUS_ACCESS_DENIED/u }]);
  const job = await backup();
  t.equal(job.state, 'failed');
  t.equal(job.error?.code, 'SV_ERR_SMB_RIGHTS_MISSING', JSON.stringify(job.error));
  t.match(job.error?.details, { unmet: [{ share: samba.unc('vmstore'), folder: 'vms', right: 'write', account: 'host-a$' }] });
  t.same(overlays(), [], 'refused before any checkpoint');
  chmodSync(folder, 0o700);
  await samba.setShares([{ ...open[0]!, validUsers: [other.name] }]); // the share closed to the host
  const connect = await until('share-permissions unmet (connect)', async () => ((await unmet()).some((u) => u.right === 'connect') ? unmet() : undefined), 30_000);
  t.match(connect, [{ share: samba.unc('vmstore'), folder: 'vms', right: 'connect' }]);
  t.equal((await backup()).error?.code, 'SV_ERR_SMB_RIGHTS_MISSING');
  await samba.setShares(open);
  await until('share permissions met', async () => ((await unmet()).length === 0 ? true : undefined), 30_000);
  t.same(await points(), [], 'no point was made');
  t.ok(await onItsDisk());
});

t.test('backup and incremental through the file server\'s agent, restored points pass the writer rule', async (t) => {
  const rpc = rig.a.appliance.agents.rpc;
  const wire = (id: string): number => rpc.bytes(id).sent + rpc.bytes(id).received;
  const [fs, h] = [agentId('files1'), agentId('host-a')];
  const before = { fs: wire(fs), host: wire(h) };
  const full = await backup();
  t.equal(full.state, 'succeeded', JSON.stringify(full.error));
  const r1 = full.result as { pointId: string; consistency: string; disks: Array<{ tracking: { method: string } }> };
  t.equal(r1.consistency, 'crash', 'a checkpoint without a guest agent: crash-consistent');
  t.equal(r1.disks[0]!.tracking.method, 'initial');
  t.ok(full.log.some((l) => /read by file server files1/u.test(l.message)), 'the disk was read by the file server');
  const fsBytes = wire(fs) - before.fs;
  const hostBytes = wire(h) - before.host;
  t.ok(fsBytes > DATA, `the data came from the file server (${fsBytes} bytes on its channel)`);
  t.ok(hostBytes < 64 * 1024, `next to nothing through the host (${hostBytes} bytes on its channel: calls only)`);
  t.same(overlays(), [], 'the overlay was merged back and removed');
  t.ok(await onItsDisk(), 'the device is on its disk again');
  // known blocks written after the point, as the guest would
  for (const [i, b] of [300, 400, 500].entries()) {
    await vm.qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/vblk0/virtio-backend "write -P ${0x21 + i} ${b * BS} ${BS}"` });
  }
  const inc = await backup();
  t.equal(inc.state, 'succeeded', JSON.stringify(inc.error));
  const r2 = inc.result as { pointId: string; blocksChanged: number; disks: Array<{ tracking: { method: string; reason?: string } }> };
  t.equal(r2.disks[0]!.tracking.method, 'bitmap', JSON.stringify(r2.disks[0]!.tracking));
  t.ok(r2.blocksChanged >= 3 && r2.blocksChanged < 200, `the incremental read the changed blocks only (${r2.blocksChanged})`);
  t.same(await rule(r1.pointId), [], 'the full point passes the writer rule');
  t.same(await rule(r2.pointId), [], 'the incremental point passes the writer rule');
  t.same(overlays(), []);
  t.equal((await queryStatus(vm.qmp)).status, 'running');
});

t.test('the Linux guest on the share: an online point by checkpoint and merge passes e2fsck and the checksums', async (t) => {
  await waitForGuestFiles(linuxOpts.serialLog, 240_000);
  await rig.waitVm(LINUX_ID);
  const src = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: LINUX_ID, name: 'linux' });
  t.equal(src.statusCode, 201, src.body);
  const sourceId = (linuxSourceId = (src.json() as { id: string }).id);
  for (let i = 0; i < 2; i++) {
    const job = await rig.job({ kind: 'backup', sourceId });
    t.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const r = job.result as { pointId: string; consistency: string; reasons: string[]; disks: Array<{ tracking: { method: string } }> };
    t.equal(r.consistency, 'application', `point ${i}: the guest was frozen through qemu-ga (${r.reasons.join('; ')})`);
    t.equal(r.disks[0]!.tracking.method, i === 0 ? 'initial' : 'bitmap', `point ${i}: tracking ${r.disks[0]!.tracking.method}`);
    t.ok(job.log.some((l) => /read by file server files1/u.test(l.message)), `point ${i}: read by the file server`);
    const check = await linuxRule(r.pointId);
    t.ok(check.ok, `point ${i}: e2fsck -fn clean without a journal replay, ${check.files} files with their checksums ${check.problems.join('; ')}`);
  }
  t.same(overlays(), [], 'every overlay merged back and removed');
  t.ok(await linuxOnItsDisk(), 'the Linux guest\'s device is on its disk again');
  t.equal((await queryStatus(linux.qmp)).status, 'running');
});

t.test('kill -9 of the host agent during a backup: the merge is completed at its next start', async (t) => {
  const n = rounds(2, 10);
  let withOverlay = 0;
  for (let round = 0; round < n; round++) {
    const job = await rig.start({ kind: 'backup', sourceId: source.id });
    await until(`round ${round}: a checkpoint on the share`, () => (overlays().length ? true : undefined), 60_000);
    await sleep(50 * round);
    if (overlays().length) withOverlay++;
    await host.kill9();
    const ended = await rig.a.appliance.queue.waitFor(job.id);
    t.not(ended.state, 'running', `round ${round}: the job ended (${ended.state})`);
    await cancelQueued(source.id);
    host = startAgentChild(top, hostOpts); // lives past this subtest (its teardown would stop it)
    await host.connected();
    await until(`round ${round}: merged back`, async () => (overlays().length === 0 && (await onItsDisk()) ? true : undefined), 60_000);
    t.equal((await queryStatus(vm.qmp)).status, 'running', `round ${round}: the VM runs`);
  }
  t.comment(`${n} host agent kill rounds, ${withOverlay} with an overlay on the share at the kill`);
  t.equal(withOverlay, n);
  await rig.waitVm(VM_ID);
  const after = await until('a backup after the kills', async () => {
    const j = await backup();
    return j.state === 'succeeded' ? j : undefined;
  }, 120_000);
  t.same(await rule((after.result as { pointId: string }).pointId), [], 'the point after the kills passes the writer rule');
  t.same(overlays(), []);
});

t.test('kill -9 of the host agent during a backup of the Linux guest: merged back, thawed, the next point passes e2fsck and the checksums', async (t) => {
  t.ok(linuxSourceId, 'the Linux guest is protected (its subtest ran)');
  const before = ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${linuxSourceId}/points`)).json() as { id: string }[]).map((p) => p.id);
  // An incremental's checkpoint can be merged back before it is seen: then the backup is simply taken again.
  const jobId = await backupAtMoment(t, rig, linuxSourceId, 'a checkpoint of the Linux guest on the share', () => overlays().length > 0);
  if (jobId !== undefined) {
    await host.kill9();
    const ended = await rig.a.appliance.queue.waitFor(jobId);
    t.not(ended.state, 'running', `the job ended (${ended.state}${ended.error ? ` ${ended.error.code}` : ''})`);
    await cancelQueued(linuxSourceId);
    host = startAgentChild(top, hostOpts); // lives past this subtest (its teardown would stop it)
    await host.connected();
    await until('the Linux guest merged back', async () => (overlays().length === 0 && (await linuxOnItsDisk()) ? true : undefined), 60_000);
  }
  t.ok(jobId !== undefined, 'the host agent was killed with the Linux guest\'s checkpoint on the share');
  t.equal((await queryStatus(linux.qmp)).status, 'running', 'the Linux guest runs');
  const listed = ((await rig.a.call('viewer', 'GET', `/api/v1/sources/${linuxSourceId}/points`)).json() as { id: string }[]).map((p) => p.id);
  t.ok(before.every((p) => listed.includes(p)), 'its earlier points are all listed');
  t.ok((await linuxRule(before[0]!)).ok, 'its first point still passes e2fsck and the checksums');
  await rig.waitVm(LINUX_ID);
  const after = await until('a backup of the Linux guest after the kill', async () => {
    const j = await rig.job({ kind: 'backup', sourceId: linuxSourceId });
    return j.state === 'succeeded' ? j : undefined;
  }, 120_000);
  const r = after.result as { pointId: string; consistency: string; reasons: string[] };
  // a guest left frozen by the killed agent could not be frozen again: an application-consistent point says it was thawed
  t.equal(r.consistency, 'application', `the point after the kill froze the guest through qemu-ga (${r.reasons.join('; ')})`);
  const check = await linuxRule(r.pointId);
  t.ok(check.ok, `the point after the kill passes e2fsck -fn without a journal replay, ${check.files} files with their checksums ${check.problems.join('; ')}`);
  t.same(overlays(), [], 'no overlay left');
});
