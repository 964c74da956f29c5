/**
 * Fencing a replica inside its qemu-storage-daemon (qsd), so that a backup reads a frozen, consistent state
 * and never the replica's file while replicated writes are being applied to it:
 *
 *   fence     `qemu-img create` a qcow2 overlay in the agent's scratch folder; blockdev-add it (no backing);
 *             ONE transaction: blockdev-snapshot of the replica node onto it (qsd drains the node: every
 *             write in flight is applied first; then the replication export writes into the overlay and the
 *             replica node is frozen), block-dirty-bitmap-add of the next tracking bitmap on the replica
 *             node and block-dirty-bitmap-disable of the current one (frozen). The next bitmap records what
 *             the merge back writes, i.e. every replicated write from the fence on. A read-only NBD export
 *             of the frozen node (with the frozen bitmap as qemu:dirty-bitmap:<name>) on the daemon's NBD
 *             server is what the backup reads.
 *   unfence   delete that export; active commit of the overlay into the replica node (job sv-<token>-merge,
 *             src/qemu/active-commit.ts, shared with the SMB merge): the writes made meanwhile land in the replica file
 *             and the replication export is back on the replica node; blockdev-del the overlay; remove its
 *             file.
 *
 * Names (each carries the view's token, so cleanup() finds exactly its own leftovers):
 *   sv-<token>-ovl              overlay node          sv-<token>-exp      read-only export (id = name)
 *   sv-<token>-merge            block-commit job      sv-<token>-replica.qcow2   overlay file
 *
 * Every step is idempotent: unfence() finishes what a killed agent left (an export, an overlay with or
 * without its merge job running). The overlay file is removed only once qsd no longer has the node: while
 * qsd holds it, it has the replicated writes made since the fence.
 */
import { execFile } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hasCode, SvError } from '../../errors/index.js';
import { activeCommit } from '../../qemu/active-commit.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { blockdevAdd, blockdevDel, blockExportAdd, dirtyBitmaps, queryBlockJobs, queryBlockExports, queryNamedBlockNodes, transaction, transactionAction, type DirtyBitmapInfo } from '../../qemu/qmp-commands.js';
import { isTrackingBitmap } from '../qemu/names.js';
import { deleteExport, deleteNode, isMissing } from '../qemu/steps.js';
import { repairTracking } from '../qemu/tracking.js';

const run = promisify(execFile);

export const fenceNames = (token: string) => ({
  overlay: `sv-${token}-ovl`,
  exportId: `sv-${token}-exp`,
  merge: `sv-${token}-merge`,
  file: `sv-${token}-replica.qcow2`,
});

const TOKEN = /^sv-([0-9a-f]{8})-(?:ovl|exp|merge|replica\.qcow2)$/u;
export const fenceToken = (name: string): string | undefined => TOKEN.exec(name)?.[1];

/** Longest a merge may take to become ready (it copies what was written during the backup). */
const MERGE_MS = 300_000;

/** The tracking switch made with the fence: `next` starts recording, `frozen` (if any) stops. */
export interface BitmapSwitch {
  readonly next: string;
  readonly frozen: string | null;
  readonly granularity: number;
}

export interface FenceTarget {
  readonly qsd: QmpClient;
  /** The replica's node in qsd. */
  readonly node: string;
  readonly scratchDir: string;
}

/** Fence: returns the export name of the frozen replica node. On failure, unfences what it made and throws. */
export async function fence(t: FenceTarget, token: string, virtualSize: number, qemuImg: string, b: BitmapSwitch): Promise<string> {
  const n = fenceNames(token);
  try {
    await run(qemuImg, ['create', '-q', '-f', 'qcow2', join(t.scratchDir, n.file), String(virtualSize)]);
    await blockdevAdd(t.qsd, { driver: 'qcow2', 'node-name': n.overlay, file: { driver: 'file', filename: join(t.scratchDir, n.file) }, backing: null });
    await transaction(t.qsd, [
      transactionAction('blockdev-snapshot', { node: t.node, overlay: n.overlay }),
      transactionAction('block-dirty-bitmap-add', { node: t.node, name: b.next, granularity: b.granularity, persistent: false }),
      ...(b.frozen ? [transactionAction('block-dirty-bitmap-disable', { node: t.node, name: b.frozen })] : []),
    ]);
    await blockExportAdd(t.qsd, { id: n.exportId, nodeName: t.node, name: n.exportId, writable: false, ...(b.frozen ? { bitmaps: [{ node: t.node, name: b.frozen }] } : {}) });
    return n.exportId;
  } catch (err) {
    await unfence(t, token).catch(() => undefined);
    await repairTracking(t.qsd, { node: t.node, bitmaps: await trackingBitmaps(t.qsd, t.node) }).catch(() => undefined);
    throw new SvError('SV_ERR_HYPERVISOR_REPLICA_FENCE', `replica node ${t.node}: fencing failed: ${(err as Error).message}`, { node: t.node, token }, { cause: err });
  }
}

/** Our sv-track-* bitmaps on the replica node. */
export async function trackingBitmaps(qsd: QmpClient, node: string): Promise<DirtyBitmapInfo[]> {
  return (await dirtyBitmaps(qsd, node)).filter((m) => isTrackingBitmap(m.name));
}

/**
 * Undo fence(token), whatever part of it exists. Throws SV_ERR_HYPERVISOR_REPLICA_FENCE when the merge fails.
 *
 * The overlay is merged back only while it is still in the chain (the replication export writes into it) or
 * while our merge job exists. After its merge the overlay node still names the replica node as its backing
 * file, but it holds the writes of the fence's time only: committing it again (an agent killed between the
 * end of the merge and blockdev-del, then its successor's cleanup) wrote those stale blocks over every
 * replicated write made since, which is what corrupted replica points after kill -9 rounds. So an overlay no
 * one uses any more is deleted, never committed: blockdev-del succeeds only on a node without users.
 */
export async function unfence(t: FenceTarget, token: string): Promise<void> {
  const n = fenceNames(token);
  try {
    await deleteExport(t.qsd, n.exportId);
    const nodes = await queryNamedBlockNodes(t.qsd);
    // QEMU 7.2 reports backing_file_depth 0 for a backing attached by blockdev-snapshot; backing_file is set
    const overlay = nodes.find((x) => x['node-name'] === n.overlay) as (typeof nodes)[number] & { backing_file?: string } | undefined;
    if (overlay) {
      const merging = (await t.qsd.execute<Array<{ id: string }>>('query-jobs')).some((j) => j.id === n.merge);
      if (merging || !(await deleteUnused(t.qsd, n.overlay))) {
        if (overlay.backing_file !== undefined) await merge(t, n.overlay, n.merge);
        await deleteNode(t.qsd, n.overlay);
      }
    }
    rmSync(join(t.scratchDir, n.file), { force: true });
  } catch (err) {
    if (hasCode(err, 'SV_ERR_HYPERVISOR_REPLICA_FENCE')) throw err;
    throw new SvError('SV_ERR_HYPERVISOR_REPLICA_FENCE', `replica node ${t.node}: merging the fence ${n.overlay} back failed: ${(err as Error).message}`, { node: t.node, token }, { cause: err });
  }
}

/** blockdev-del of a node that nothing uses: true when it is gone, false when QEMU refused (it is in use). */
async function deleteUnused(qsd: QmpClient, node: string): Promise<boolean> {
  try {
    await blockdevDel(qsd, node);
    return true;
  } catch (err) {
    if (isMissing(err)) return true;
    if (hasCode(err, 'SV_ERR_QEMU_COMMAND_FAILED')) return false;
    throw err;
  }
}

/** Active commit of `overlay` into the replica node (src/qemu/active-commit.ts). */
function merge(t: FenceTarget, overlay: string, job: string): Promise<void> {
  return activeCommit(t.qsd, {
    jobId: job, top: overlay, base: t.node, timeoutMs: MERGE_MS,
    failure: (message, details) => new SvError('SV_ERR_HYPERVISOR_REPLICA_FENCE', `replica node ${t.node}: ${message}`, { node: t.node, ...details }),
  });
}

/**
 * Everything a killed run left in this qsd and scratch folder (names with a token not in `active`): unfenced;
 * overlay files whose node qsd does not have are removed; with no view active, the tracking bitmaps repaired
 * (a frozen one merged back: tracking.ts). Returns what it removed or repaired.
 */
export async function cleanupFences(t: FenceTarget, active: ReadonlySet<string>): Promise<string[]> {
  const tokens = new Set<string>();
  for (const x of await queryNamedBlockNodes(t.qsd)) tokens.add(fenceToken(x['node-name']) ?? '');
  for (const x of await queryBlockExports(t.qsd)) tokens.add(fenceToken(x.id) ?? '');
  for (const x of await queryBlockJobs(t.qsd)) tokens.add(fenceToken(x.device) ?? '');
  tokens.delete('');
  const removed: string[] = [];
  for (const token of tokens) {
    if (active.has(token)) continue;
    await unfence(t, token);
    removed.push(`replica fence ${fenceNames(token).overlay} (merged back into ${t.node})`);
  }
  let files: string[] = [];
  try {
    files = readdirSync(t.scratchDir);
  } catch {
    files = [];
  }
  // With no view active, the bitmaps a killed run left are repaired as the QEMU view's are (tracking.ts: a
  // frozen one merged back). Session 7 removed them instead, after kill -9 rounds restored points with stale
  // blocks; the cause was the second commit of an already merged overlay (unfence above), not the bitmaps.
  if (active.size === 0) {
    const repair = await repairTracking(t.qsd, { node: t.node, bitmaps: await trackingBitmaps(t.qsd, t.node) });
    removed.push(...repair.actions);
  }
  const nodes = new Set((await queryNamedBlockNodes(t.qsd)).map((x) => x['node-name']));
  for (const f of files) {
    const token = fenceToken(f);
    if (!token || active.has(token) || !f.endsWith('.qcow2') || nodes.has(fenceNames(token).overlay)) continue;
    rmSync(join(t.scratchDir, f), { force: true });
    removed.push(`replica overlay file ${f}`);
  }
  return removed;
}
