/**
 * Instant recovery end to end, as a user runs it: the shared writer guest's disk is backed up, then
 * `shadowvault export SOURCE --writable --keep` (a real CLI process) serves the point over a unix socket;
 * QEMU boots the guest from the export (`-blockdev driver=nbd`) and the guest writes through the overlay.
 * Then the VM is paused and quit, and the exporter stopped with SIGTERM. Checked:
 *   - the served point is bit-identical before and after (digest of its disk read from the store);
 *   - `--keep` made a new point, parent = the served point, `madeFrom.instantRecovery` = it, and its disk,
 *     restored to raw, passes the writer's consistency rule with the guest's progress in it;
 *   - while exported, the point is held (prune keeps it and says so).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { openPointImage } from '../../src/points/image.js';
import { NbdClient } from '../../src/nbd/client.js';
import { closePool } from '../../src/pool/index.js';
import { backup, listPoints, prune, restore } from '../../src/sync/index.js';
import { tempDir } from '../helpers/env.js';
import { startExporter } from '../helpers/exporter.js';
import { startVm } from '../helpers/vm.js';
import { RING_SLOTS, checkWriterImage, makeWriterDisk } from '../helpers/writer-guest.js';
import { fileRefs } from '../../src/sources/file.js';

async function pointDigest(store: string, source: string, point: string): Promise<string> {
  const image = await openPointImage({ store, source, point, hold: false });
  try {
    return createHash('sha256').update(await image.read(0, image.info.virtualSize)).digest('hex');
  } finally {
    await image.close();
  }
}

t.teardown(() => closePool());

t.test('QEMU boots the writer guest from a writable export; --keep saves a consistent new point', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const disk = makeWriterDisk(join(dir, 'writer.raw'), 'raw');
  const served = await backup({ store, source: 'writer', disks: fileRefs([disk]) });
  const before = await pointDigest(store, 'writer', served.id);
  await backup({ store, source: 'writer', disks: fileRefs([disk]) }); // a newer point: retention of 1 would drop the served one

  const sock = join(dir, 'export.sock');
  const started = await startExporter(t, [`writer@${served.id}`, '--store', store, '--socket', sock, '--writable', '--keep']);
  const { child: exporter, exited } = started;
  const serving = started.serving as { event: string; name: string; uri: string; writable: boolean };
  t.equal(serving.event, 'serving', `exporter serving (${started.stderr()})`);
  t.equal(serving.name, `writer@${served.id}/0`, 'export name SOURCE@POINTID/DISK');

  const pr = await prune({ store, source: 'writer', retention: { maxCount: 1, days: 0 } });
  t.ok(pr.held.some((h) => h.id === served.id && h.holders.some((x) => x.includes('export'))), `prune reports the served point as held by the export: ${JSON.stringify(pr.held)}`);
  t.ok((await listPoints({ store, source: 'writer' })).some((p) => p.id === served.id), 'prune during the export keeps the held point');

  const vm = await startVm(t, {
    dir, disks: [],
    extraArgs: ['-blockdev', JSON.stringify({ driver: 'nbd', 'node-name': 'disk0', server: { type: 'unix', path: sock }, export: serving.name }), '-device', 'virtio-blk-pci,drive=disk0,id=vblk0,bootindex=1'],
  });
  // Watch the guest's header through a second connection to the same export (the overlay is shared).
  const watcher = await NbdClient.connect({ target: { path: sock }, exportName: serving.name });
  let header = 0;
  for (let i = 0; i < 1200 && header < RING_SLOTS + 64; i++) {
    header = (await watcher.read(512, 512)).readUInt32LE(0);
    await new Promise((r) => setTimeout(r, 100));
  }
  await watcher.close();
  t.ok(header >= RING_SLOTS + 64, `the guest runs and writes through the export (header ${header})`);
  await vm.qmp.execute('stop');
  await vm.shutdown();

  exporter.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 0, `exporter stopped cleanly (${started.stderr()})`);
  const stopped = JSON.parse(started.stdout().trim().split('\n').pop()!) as { event: string; kept?: { id: string; parent: string; madeFrom?: { instantRecovery: string } } };
  t.equal(stopped.event, 'stopped', 'stop reported');
  const kept = stopped.kept!;
  t.ok(kept && kept.parent === served.id && kept.madeFrom?.instantRecovery === served.id, 'new point: parent and madeFrom name the served point');

  t.equal(await pointDigest(store, 'writer', served.id), before, 'the served point is bit-identical after the guest ran');
  const raw = join(dir, 'kept.raw');
  await restore({ store, source: 'writer', point: kept.id, out: raw, format: 'raw' });
  const check = checkWriterImage(raw);
  t.ok(check.ok, `the kept point passes the writer rule (header ${check.header}) ${check.problems.join('; ')}`);
  t.ok(check.header >= header, 'the kept point holds the guest progress seen through the export');
});
