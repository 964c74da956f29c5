/**
 * QEMU block jobs as a management tool drives them to move a running VM's disk (tests and the bench): the
 * disk's root node, a mirror job waited until ready or gone, a sparse target file, and storage live migration
 * on the same host (`blockdev-mirror` to a new file, `block-job-complete` = the pivot, `blockdev-del` of the
 * old nodes). QMP only: no test framework here, so bench/ can use it too.
 */
import { statSync, truncateSync, writeFileSync } from 'node:fs';
import type { QmpClient } from '../../src/qemu/qmp.js';

async function poll(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The root node of device `qdev`'s medium (`disk0` at start, the mirror target after a pivot). */
export async function rootNode(qmp: QmpClient, qdev = 'vblk0'): Promise<string> {
  const blocks = await qmp.execute<Array<{ qdev?: string; inserted?: { 'node-name': string } }>>('query-block');
  const b = blocks.find((x) => x.qdev?.includes(qdev) && x.inserted);
  if (!b?.inserted) throw new Error(`no ${qdev} in query-block: ${JSON.stringify(blocks)}`);
  return b.inserted['node-name'];
}

interface BlockJob { device: string; ready: boolean }

export function jobReady(qmp: QmpClient, id: string, ms = 600_000): Promise<void> {
  return poll(`block job ${id} ready`, async () => {
    const j = (await qmp.execute<BlockJob[]>('query-block-jobs')).find((x) => x.device === id);
    if (!j) throw new Error(`block job ${id} is gone before it was ready`);
    return j.ready;
  }, ms);
}

export function jobGone(qmp: QmpClient, id: string, ms = 120_000): Promise<void> {
  return poll(`block job ${id} finished`, async () => !(await qmp.execute<BlockJob[]>('query-block-jobs')).some((x) => x.device === id), ms);
}

/** A sparse raw file of `size` bytes (a mirror target; management tools pre-create it the same way). */
export function emptyDisk(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}

/**
 * Storage live migration on the same host, same QEMU: mirror device vblk0's disk (raw, file `oldPath`) to
 * `newPath`, pivot, and drop the old nodes (which releases the old file). `tag` keeps node and job names unique.
 */
export async function moveStorage(qmp: QmpClient, oldPath: string, newPath: string, tag: string): Promise<void> {
  emptyDisk(newPath, statSync(oldPath).size);
  const old = await rootNode(qmp);
  const oldFile = (await qmp.execute<Array<{ 'node-name': string; file: string; drv: string }>>('query-named-block-nodes'))
    .find((x) => x.drv === 'file' && x.file === oldPath)?.['node-name'];
  await qmp.execute('blockdev-add', { driver: 'file', filename: newPath, 'node-name': `mv-file-${tag}` });
  await qmp.execute('blockdev-add', { driver: 'raw', file: `mv-file-${tag}`, 'node-name': `mv-disk-${tag}` });
  const job = `mv-${tag}`;
  await qmp.execute('blockdev-mirror', { 'job-id': job, device: old, target: `mv-disk-${tag}`, sync: 'full' });
  await jobReady(qmp, job);
  await qmp.execute('block-job-complete', { device: job });
  await jobGone(qmp, job);
  const now = await rootNode(qmp);
  if (now !== `mv-disk-${tag}`) throw new Error(`after the pivot vblk0 is on ${now}, not mv-disk-${tag}`);
  await qmp.execute('blockdev-del', { 'node-name': old });
  if (oldFile) await qmp.execute('blockdev-del', { 'node-name': oldFile });
}
