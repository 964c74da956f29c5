/**
 * A recovery point served read-only by RecoveryExport over TCP on loopback: `qemu-img compare` against
 * the same point restored to a raw file, an `nbdcopy` of it (parallel requests) equal to that file,
 * `nbdinfo --map` shows the point's zero blocks as holes, the default export name is the disk, writes are refused, `--keep` of a read-only export is refused, and
 * the point's hold is released when the export stops.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { RecoveryExport } from '../../src/export/exporter.js';
import { closePool } from '../../src/pool/index.js';
import { backup, restore } from '../../src/sync/index.js';
import { Store } from '../../storage/store.js';
import { listHolds } from '../../storage/holds.js';
import { requireTool, runAsync, tempDir } from '../helpers/env.js';
import { makeDisk } from '../nbd/serve-image.js';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(() => closePool());

t.test('read-only export of a point = the point restored; holes visible; hold released on stop', async (t) => {
  const dir = tempDir(t);
  const { vhdx } = makeDisk(dir, 48 << 20, 1212);
  const store = join(dir, 'store');
  const point = await backup({ store, source: 'vm', disks: fileRefs([vhdx]) });
  const restored = join(dir, 'restored.raw');
  await restore({ store, source: 'vm', point: point.id, out: restored, format: 'raw' });

  const ex = await RecoveryExport.start({ store, source: 'vm', point: point.id, listen: { port: 0 } });
  const info = ex.info;
  t.match(info.uri, /^nbd:\/\/127\.0\.0\.1:\d+\//, `listens on loopback: ${info.uri}`);
  t.match(await runAsync(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'raw', restored, info.uri]), /Images are identical/, 'qemu-img compare: export = restored raw disk');
  const port = 'port' in info.address ? info.address.port : 0;
  // nbdcopy: 4 connections x 64 requests in flight over 12 windows (reused ones among them): the same bytes.
  const copied = join(dir, 'copied.raw');
  await runAsync(requireTool('nbdcopy'), [`nbd://127.0.0.1:${port}`, copied]);
  t.ok(readFileSync(copied).equals(readFileSync(restored)), 'nbdcopy of the export (parallel requests) = restored raw disk');
  const map = JSON.parse(await runAsync(requireTool('nbdinfo'), ['--map', '--json', `nbd://127.0.0.1:${port}`])) as { offset: number; length: number; type: number }[];
  const zeroBlocks = point.disks[0]!.stats!.blocksZero;
  const holeBytes = map.filter((e) => e.type & 1).reduce((n, e) => n + e.length, 0);
  t.equal(holeBytes, zeroBlocks * point.blockSize, `nbdinfo --map (default export) shows the point's ${zeroBlocks} zero blocks as holes`);
  await t.rejects(runAsync('qemu-io', ['-f', 'raw', '-c', 'write 0 4096', info.uri]), 'writes to a read-only export are refused');
  const refused = await ex.stop({ keep: true }).then(() => null, (err: unknown) => err);
  t.ok(hasCode(refused, 'SV_ERR_NBD_BAD_EXPORT_OPTIONS'), '--keep of a read-only export is refused');

  const s = await Store.open(store);
  t.equal((await listHolds(s, 'vm')).get(point.id)?.length, 1, 'the point is held while exported');
  const r = await ex.stop();
  t.equal(r.kept, undefined, 'nothing kept');
  t.equal((await listHolds(s, 'vm')).get(point.id)?.length ?? 0, 0, 'hold released on stop');
});
