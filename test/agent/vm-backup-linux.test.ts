/**
 * End to end, online: a real Linux guest (ext4 on virtio, qemu-guest-agent, a writer of checksummed files)
 * backed up through a real agent process and a real appliance. The point is application-consistent (the
 * guest froze its file systems through its guest agent); the restored disk passes `e2fsck -fn` with no
 * journal replay and every file the guest finished has its checksum. One boot for the file.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { queryStatus } from '../../src/qemu/qmp-commands.js';
import { checkGuestFiles, fsck, startLinuxGuest } from '../helpers/linux-guest.js';
import { startAgentChild, startRig } from './vm-e2e-helpers.js';

const VM_ID = '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11';
t.teardown(() => closePool());

const rig = await startRig(t);
const agentQmp = join(rig.dir, 'agent.qmp');
const guest = await startLinuxGuest(t, rig.dir, { extraArgs: ['-qmp', `unix:${agentQmp},server=on,wait=off`] });
t.comment(`Linux guest ready after ${guest.bootMs} ms`);
const agent = startAgentChild(t, { appliance: rig.url, pair: await rig.pairCode(), dataDir: join(rig.dir, 'agent'), qmp: [agentQmp], stateDir: join(rig.dir, 'agent-state'), restoreRoots: [] });
await agent.connected();
await rig.waitVm(VM_ID);
const added = await rig.a.call('admin', 'POST', '/api/v1/sources', { vm: VM_ID });
t.equal(added.statusCode, 201, added.body);
const source = added.json() as { id: string; name: string };

t.test('online points of a running Linux guest pass e2fsck -fn and the checksum rule', async (t) => {
  for (let i = 0; i < 2; i++) {
    const job = await rig.job({ kind: 'backup', sourceId: source.id });
    t.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const point = job.result as { pointId: string; consistency: string; freezeMs?: number; reasons: string[] };
    t.equal(point.consistency, 'application', `point ${i}: application-consistent (${point.reasons.join('; ')})`);
    t.ok(typeof point.freezeMs === 'number', `point ${i}: frozen ${point.freezeMs} ms`);
    const out = join(rig.dir, `restored-${i}.raw`);
    const img = await rig.a.appliance.engine.exportImage({ source: source.name, pointId: point.pointId, disk: 0, format: 'raw' }, new AbortController().signal);
    await pipeline(img.stream(), createWriteStream(out));
    const f = fsck(out);
    t.equal(f.status, 0, `point ${i}: e2fsck -fn is clean without a journal replay\n${f.output}`);
    const walk = checkGuestFiles(out, rig.dir);
    t.ok(walk.files > 0, `point ${i}: ${walk.files} files`);
    t.same(walk.bad, [], `point ${i}: every file has its checksum`);
  }
  t.match(await queryStatus(guest.vm.qmp), { running: true }, 'the guest keeps running');
});
