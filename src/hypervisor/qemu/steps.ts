/**
 * The QMP steps of a view, each one idempotent: run twice, or on something already gone, it succeeds.
 *
 * Point in time of one disk (QEMU >= 7.1): a scratch qcow2 node, a `copy-before-write` filter above the
 * disk's node with `on-cbw-error: break-snapshot` and `cbw-timeout` (a full, failing or slow scratch breaks
 * the VIEW, never a guest write), the device switched onto the filter (`qom-set drive`, the moment of the
 * point in time), and a `snapshot-access` node over the filter, exported read-only over NBD.
 * Teardown runs the other way: export, snapshot-access, device back on its node, filter, scratch node, file.
 */
import { rmSync } from 'node:fs';
import { SvError, hasCode } from '../../errors/index.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { blockExportDel, blockdevAdd, blockdevDel, qomSet, queryBlock, queryBlockExports } from '../../qemu/qmp-commands.js';

/** A QMP error that says the thing is not there (so deleting it again is a success). */
export function isMissing(err: unknown): boolean {
  if (!hasCode(err, 'SV_ERR_QEMU_COMMAND_FAILED')) return false;
  const desc = String((err as SvError).details.desc ?? '');
  return /not found|Failed to find|does not exist|No such|Cannot find/iu.test(desc) || (err as SvError).details.errorClass === 'DeviceNotFound';
}

async function ignoreMissing(op: Promise<unknown>): Promise<void> {
  try {
    await op;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function addScratchNode(qmp: QmpClient, node: string, file: string): Promise<void> {
  await blockdevAdd(qmp, { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: file } });
}

export async function addCbwFilter(qmp: QmpClient, node: string, disk: string, target: string, timeoutS: number): Promise<void> {
  await blockdevAdd(qmp, { driver: 'copy-before-write', 'node-name': node, file: disk, target, 'on-cbw-error': 'break-snapshot', 'cbw-timeout': timeoutS });
}

export async function addSnapshotAccess(qmp: QmpClient, node: string, cbw: string): Promise<void> {
  await blockdevAdd(qmp, { driver: 'snapshot-access', 'node-name': node, file: cbw });
}

export const setDrive = (qmp: QmpClient, qdev: string, node: string) => qomSet(qmp, qdev, 'drive', node);

/**
 * Put device `qdev` back on `node` if it sits on `filter` now. Only then: QEMU (7.2) aborts on an assertion
 * (bdrv_replace_child_noperm: old_bs != new_bs) when `drive` is set to the node the device already uses,
 * which is where a view whose switch failed (the qom-set refused, or its answer lost) stands.
 */
export async function setDriveBack(qmp: QmpClient, qdev: string, filter: string, node: string): Promise<void> {
  const device = (await queryBlock(qmp)).find((b) => b.qdev === qdev);
  if (device?.inserted?.['node-name'] === filter) await setDrive(qmp, qdev, node);
}

/** Delete an export and wait (bounded) until QEMU no longer lists it (deletion finishes asynchronously). */
export async function deleteExport(qmp: QmpClient, id: string): Promise<void> {
  await ignoreMissing(blockExportDel(qmp, id, 'hard'));
  for (let i = 0; i < 100; i++) {
    if (!(await queryBlockExports(qmp)).some((e) => e.id === id)) return;
    await sleep(20);
  }
  throw new SvError('SV_ERR_HYPERVISOR_VIEW_FAILED', `export ${id} is still listed 2 s after block-export-del`, { export: id });
}

/** blockdev-del, retried briefly while the node is still in use by a parent that is going away. */
export async function deleteNode(qmp: QmpClient, node: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await ignoreMissing(blockdevDel(qmp, node));
      return;
    } catch (err) {
      if (i >= 50 || !/in use/iu.test(String((err as SvError).details?.desc ?? ''))) throw err;
      await sleep(20);
    }
  }
}

export function deleteFile(path: string): void {
  rmSync(path, { force: true });
}

/** Run every step, keep going after a failure, and throw the first failure at the end. */
export async function allSteps(steps: ReadonlyArray<[what: string, run: () => Promise<void> | void]>, errors: Array<{ what: string; error: unknown }> = []): Promise<void> {
  for (const [what, run] of steps) {
    try {
      await run();
    } catch (error) {
      errors.push({ what, error });
    }
  }
  if (errors.length > 0) throw errors[0]!.error;
}
