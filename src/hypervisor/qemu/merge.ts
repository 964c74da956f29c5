/**
 * Merging a checkpoint overlay back into its base disk (checkpoint.ts), online or offline. Both are safe to
 * run again after a crash at any moment, because the overlay file is removed only after its merge finished:
 *
 *   online   (QEMU runs; the device's root node is the overlay)   the active commit of src/qemu/active-commit.ts
 *            (block-commit, job-complete once READY: the device pivots back onto the base node, job-dismiss),
 *            job `sv-<token>-mrg<i>`, driven on from its state when a killed agent started it. A failed job
 *            is SV_ERR_SMB_MERGE_FAILED: the overlay stays in the chain, nothing is lost.
 *   offline  (its QEMU is gone: killed, crashed)   `qemu-img commit` of the overlay file into its backing file
 *            (the base path written in its header), retried while a QEMU that is still exiting holds the lock.
 *            An interrupted commit is repeated whole: it copies the overlay's data again, the overlay keeps it.
 *
 * Dirty bitmaps: a guest write made while the overlay was active reaches the base node only through the
 * commit, which marks the base node's enabled tracking bitmap: no change escapes change tracking.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { SvError } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { activeCommit } from '../../qemu/active-commit.js';
import { queryBlock } from '../../qemu/qmp-commands.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface OverlayRef {
  /** The device (QOM path) whose active layer the overlay is. */
  readonly qdev: string;
  readonly overlayNode: string;
  readonly baseNode: string;
  readonly jobId: string;
  readonly path: string;
}

/** The device's root node now (undefined: no such device or no medium). */
export async function rootOf(qmp: QmpClient, qdev: string): Promise<string | undefined> {
  return (await queryBlock(qmp)).find((b) => b.qdev === qdev)?.inserted?.['node-name'];
}

/**
 * Merge the overlay back while QEMU runs. Returns false when the overlay is not the device's active layer
 * and no merge job of ours exists (nothing to merge: the snapshot never happened, or the merge finished).
 */
export async function mergeOnline(qmp: QmpClient, o: OverlayRef, timeoutMs = 300_000): Promise<boolean> {
  const running = (await qmp.execute<Array<{ id: string }>>('query-jobs')).some((j) => j.id === o.jobId);
  if (!running && (await rootOf(qmp, o.qdev)) !== o.overlayNode) return false;
  await activeCommit(qmp, {
    jobId: o.jobId, top: o.overlayNode, base: o.baseNode, timeoutMs,
    failure: (message, details) => new SvError('SV_ERR_SMB_MERGE_FAILED', `overlay ${o.path}: ${message} (the overlay stays in use; the next start retries)`, { overlay: o.path, ...details }),
  });
  const root = await rootOf(qmp, o.qdev);
  if (root === o.overlayNode) throw new SvError('SV_ERR_SMB_MERGE_FAILED', `after its merge job, device ${o.qdev} is still on overlay ${o.overlayNode}`, { overlay: o.path, job: o.jobId });
  return true;
}

/** Merge an overlay file into its backing file with qemu-img (its QEMU is gone). Returns false when there is no file. */
export async function mergeOffline(path: string, qemuImg: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  let last: unknown;
  for (let i = 0; i < 25; i++) {
    try {
      await run(qemuImg, ['commit', '-q', '-f', 'qcow2', path]);
      return true;
    } catch (err) {
      last = err;
      if (!/lock/iu.test(String((err as { stderr?: string }).stderr ?? ''))) break;
      await sleep(200); // a QEMU that is still exiting holds its image locks
    }
  }
  throw new SvError('SV_ERR_SMB_MERGE_FAILED', `qemu-img commit ${path} failed: ${String((last as { stderr?: string }).stderr ?? (last as Error).message).trim()} (the overlay is kept)`, { overlay: path }, { cause: last });
}
