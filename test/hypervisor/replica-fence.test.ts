/**
 * The replica fence after an agent killed -9 (src/hypervisor/replica/fence.ts), on a real qemu-storage-daemon
 * whose NBD export stands for the replication target (writes through it are what the primary's mirror sends):
 *
 * - killed after the merge finished but before blockdev-del of the overlay: the overlay node still names the
 *   replica node as its backing file, and the next start's cleanup must DELETE it, not commit it again. A
 *   second commit wrote the fence-time blocks over the replicated writes made since (the cause of the replica
 *   points that failed the writer rule after kill rounds in session 7): here the block written after the merge
 *   must survive the cleanup.
 * - killed while fenced (the overlay still in the chain): the cleanup merges it back; its writes reach the
 *   replica file and the next tracking bitmap, which is repaired, not dropped.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { activeCommit } from '../../src/qemu/active-commit.js';
import { SvError } from '../../src/errors/index.js';
import { dirtyBitmaps, queryNamedBlockNodes } from '../../src/qemu/qmp-commands.js';
import { cleanupFences, fence, fenceNames, type FenceTarget } from '../../src/hypervisor/replica/fence.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { startQsd } from '../helpers/qsd.js';

const dir = tempDir(t, 'sv-replica-fence-');
const disk = join(dir, 'replica.raw');
const qemuImg = requireTool('qemu-img');
const qemuIo = requireTool('qemu-io');
run(qemuImg, ['create', '-q', '-f', 'raw', disk, '16M']);
const qsd = await startQsd(t, { dir, disk, node: 'replica0', monitors: ['agent'] });
const qmp = await qsd.connect('agent');
t.teardown(() => qmp.close());
const target: FenceTarget = { qsd: qmp, node: 'replica0', scratchDir: dir };
const G = 64 * 1024;

/** A write through the replication export, as the primary's mirror sends it. */
const replicate = (pattern: number, offset: number): string => run(qemuIo, ['-f', 'raw', `nbd+unix:///replica0?socket=${qsd.nbdSocket}`, '-c', `write -P ${pattern} ${offset} ${G}`]);
/** Whether the replica (through its export) has `pattern` at `offset`. */
const has = (pattern: number, offset: number): boolean => !/fail/iu.test(run(qemuIo, ['-f', 'raw', `nbd+unix:///replica0?socket=${qsd.nbdSocket}`, '-c', `read -P ${pattern} ${offset} ${G}`]));
const ours = async (): Promise<string[]> => (await queryNamedBlockNodes(qmp)).map((n) => n['node-name']).filter((n) => n.startsWith('sv-'));

t.test('killed after the merge, before the overlay was deleted: the overlay is dropped, not committed again', async (t) => {
  const token = 'aaaa0001';
  await fence(target, token, 16 << 20, qemuImg, { next: 'sv-track-aaaa0001', frozen: null, granularity: G });
  replicate(0x55, 0); // lands in the overlay while fenced
  const n = fenceNames(token);
  await activeCommit(qmp, { jobId: n.merge, top: n.overlay, base: 'replica0', timeoutMs: 60_000, failure: (m) => new SvError('SV_ERR_CORE_INTERNAL', m, {}) });
  t.ok(has(0x55, 0), 'the merge brought the fence-time write into the replica');
  replicate(0x77, 0); // replication goes on after the merge; the agent "dies" before blockdev-del
  t.same(await ours(), [n.overlay], 'the merged overlay node is still there');
  const removed = await cleanupFences(target, new Set());
  t.ok(removed.length > 0, `cleanup: ${removed.join('; ')}`);
  t.ok(has(0x77, 0), 'the write made after the merge survives the cleanup (no second commit of stale blocks)');
  t.same(await ours(), [], 'no sv- node left');
});

t.test('killed while fenced: the cleanup merges the overlay back; the next bitmap has its writes and is kept', async (t) => {
  const token = 'aaaa0002';
  await fence(target, token, 16 << 20, qemuImg, { next: 'sv-track-aaaa0002', frozen: 'sv-track-aaaa0001', granularity: G });
  replicate(0x66, 4 * G);
  t.not(readFileSync(disk).subarray(4 * G, 4 * G + 1)[0], 0x66, 'fenced: the write is in the overlay, not yet in the replica file');
  const removed = await cleanupFences(target, new Set());
  t.ok(removed.length > 0, `cleanup: ${removed.join('; ')}`);
  t.ok(has(0x66, 4 * G), 'the fence-time write reached the replica');
  t.same(await ours(), [], 'no sv- node left');
  const bitmaps = (await dirtyBitmaps(qmp, 'replica0')).filter((b) => b.name?.startsWith('sv-track-'));
  t.equal(bitmaps.length, 1, `one tracking bitmap after the repair: ${bitmaps.map((b) => b.name).join(', ')}`);
  t.match(bitmaps[0], { name: 'sv-track-aaaa0001', recording: true }, 'the frozen one, merged with the next and recording again');
  t.ok((bitmaps[0]?.count ?? 0) >= G, `it marks the merged write (${bitmaps[0]?.count} bytes dirty)`);
});
