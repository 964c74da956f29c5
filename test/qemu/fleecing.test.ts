/**
 * The QMP sequence the host agent will drive, against the writer guest on a qcow2 disk: one `transaction`
 * (dirty bitmap + blockdev-backup sync=none into a fleecing overlay backed by the disk), QEMU's NBD server
 * exporting the overlay read-only, a read of the export while the guest keeps writing (it must be one point
 * in time: the writer rule holds), then a teardown that leaves nothing behind.
 */
import t from 'tap';
import { join } from 'node:path';
import {
  bitmapAdd, bitmapRemove, blockExportAdd, blockExportDel, blockJobCancel, blockdevAdd, blockdevDel, dirtyBitmaps, nbdServerStart,
  nbdServerStop, queryBlockExports, queryBlockJobs, queryNamedBlockNodes, transaction, transactionAction,
} from '../../src/qemu/qmp-commands.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { startVm } from '../helpers/vm.js';
import { checkWriterImage, makeWriterDisk, readHeader, waitForHeader } from '../helpers/writer-guest.js';

const dir = tempDir(t, 'sv-fleece-');
const disk = makeWriterDisk(join(dir, 'disk.qcow2'), 'qcow2');
const vm = await startVm(t, { dir, name: 'sv-fleece', disks: [{ path: disk, format: 'qcow2' }] });
await waitForHeader(disk, 300, 'qcow2');
const qemuImg = requireTool('qemu-img');
const nbdSocket = join(dir, 'nbd.sock');
const exportUri = (name: string): string => `nbd+unix:///${name}?socket=${nbdSocket}`;

t.test('fleecing: a point in time of a running guest over NBD, then nothing left', async (t) => {
  const { qmp } = vm;
  const scratch = join(dir, 'fleece.qcow2');
  run(qemuImg, ['create', '-q', '-f', 'qcow2', scratch, '64M']);
  await blockdevAdd(qmp, { driver: 'qcow2', 'node-name': 'fleece0', file: { driver: 'file', filename: scratch }, backing: 'disk0' });
  const before = readHeader(disk, 'qcow2');
  await transaction(qmp, [
    transactionAction('block-dirty-bitmap-add', { node: 'disk0', name: 'sv-since', granularity: 65536 }),
    transactionAction('blockdev-backup', { device: 'disk0', target: 'fleece0', sync: 'none', 'job-id': 'sv-fleece0' }),
  ]);
  const atSnapshot = readHeader(disk, 'qcow2');
  await nbdServerStart(qmp, nbdSocket);
  await blockExportAdd(qmp, { id: 'sv-exp0', nodeName: 'fleece0' });
  await blockExportAdd(qmp, { id: 'sv-live0', nodeName: 'disk0' });
  t.match(await queryBlockJobs(qmp), [{ device: 'sv-fleece0', type: 'backup' }]);

  // Let the guest overwrite a good part of the ring, then read the export.
  await waitForHeader(disk, atSnapshot + 64, 'qcow2');
  const copy = join(dir, 'fleeced.raw');
  run(qemuImg, ['convert', '-O', 'raw', exportUri('sv-exp0'), copy]);
  const check = checkWriterImage(copy);
  t.same(check.problems, [], 'the fleeced copy keeps the writer rule');
  t.ok(check.header >= before && check.header <= atSnapshot, `export header ${check.header}: the transaction ran between live headers ${before} and ${atSnapshot}`);
  const live = join(dir, 'live.raw');
  run(qemuImg, ['convert', '-O', 'raw', exportUri('sv-live0'), live]);
  t.comment(`a read of the live export: ${checkWriterImage(live).ok ? 'consistent (the race was not hit)' : 'torn'}`);
  // The backup job adds an anonymous bitmap of its own; ours is the named one.
  const bitmap = (await dirtyBitmaps(qmp, 'disk0')).find((b) => b.name === 'sv-since');
  t.match(bitmap, { name: 'sv-since', recording: true, granularity: 65536 });
  t.ok((bitmap?.count ?? 0) > 0, `the bitmap recorded the guest's writes since the transaction (${bitmap?.count} bytes)`);

  // Teardown in the order the agent will use.
  for (const id of ['sv-exp0', 'sv-live0']) {
    const deleted = qmp.waitForEvent('BLOCK_EXPORT_DELETED', (d) => d.id === id);
    await blockExportDel(qmp, id);
    await deleted;
  }
  await nbdServerStop(qmp);
  const cancelled = qmp.waitForEvent('BLOCK_JOB_CANCELLED', (d) => d.device === 'sv-fleece0');
  await blockJobCancel(qmp, 'sv-fleece0');
  await cancelled;
  await blockdevDel(qmp, 'fleece0');
  await bitmapRemove(qmp, { node: 'disk0', name: 'sv-since' });
  t.same(await queryBlockExports(qmp), []);
  t.same(await queryBlockJobs(qmp), []);
  t.same((await queryNamedBlockNodes(qmp)).map((n) => n['node-name']).sort(), ['disk0', 'file0']);
  t.same(await dirtyBitmaps(qmp, 'disk0'), []);
});

t.test('a failed transaction changes nothing', async (t) => {
  const { qmp } = vm;
  const err = await transaction(qmp, [
    transactionAction('block-dirty-bitmap-add', { node: 'disk0', name: 'sv-rollback', granularity: 65536 }),
    transactionAction('blockdev-backup', { device: 'disk0', target: 'no-such-node', sync: 'none', 'job-id': 'sv-bad' }),
  ]).catch((e: unknown) => e);
  t.match(err, { code: 'SV_ERR_QEMU_COMMAND_FAILED', details: { command: 'transaction', errorClass: 'GenericError' } });
  t.same(await dirtyBitmaps(qmp, 'disk0'), [], 'the bitmap of the failed transaction was rolled back');
  await bitmapAdd(qmp, { node: 'disk0', name: 'sv-plain' });
  await bitmapRemove(qmp, { node: 'disk0', name: 'sv-plain' });
});
