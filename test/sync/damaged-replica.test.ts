/**
 * Regression: an incremental backup whose replica has a damaged leaf or inner page must not commit a point
 * with the unchanged blocks of that page missing: it re-reads the whole leaf (or the whole disk) from the source.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, restore, verify, fileRefs } from '../../src/sync/index.js';
import { packFileName } from '../../storage/layout.js';
import { Store } from '../../storage/store.js';
import { loadLevels, treeShape } from '../../storage/tree.js';
import { BlobReader } from '../../storage/blobs.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from './helpers.js';

t.teardown(closePool);

async function corruptBlob(storeDir: string, digest: Buffer): Promise<void> {
  const store = await Store.open(storeDir);
  const loc = (await store.loadIndex()).lookup(digest)!;
  const path = join(store.packsDir, packFileName(loc.packId));
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  const pos = loc.offset + Math.floor(loc.storedLength / 2);
  readSync(fd, b, 0, 1, pos);
  b[0] = b[0]! ^ 0x5a;
  writeSync(fd, b, 0, 1, pos);
  closeSync(fd);
}

for (const which of ['leaf', 'root'] as const) {
  t.test(`damaged ${which} page of the replica, then an incremental backup`, async (t) => {
    const dir = tempDir(t);
    const storeDir = join(dir, 'store');
    const disk = join(dir, 'd.raw');
    const size = 8 << 20;
    generateDisk(disk, size, 77);
    const p1 = await backup({ store: storeDir, source: 'vm', disks: fileRefs([disk]), blockSize: 4096 }); // 2048 blocks: 2 leaves + root
    const store = await Store.open(storeDir);
    const m = await store.readPoint('vm', p1.id);
    const shape = treeShape(size, 4096, m.fanout);
    t.equal(shape.depth, 2);
    const root = Buffer.from(m.disks[0]!.root, 'hex');
    const levels = await loadLevels(new BlobReader(store.ref, await store.loadIndex()).readPage, shape, root);
    await corruptBlob(storeDir, which === 'root' ? root : Buffer.from(levels[0]!.subarray(0, 32)));
    const changes = changeDay(disk, size, 1, 5, 4096);
    const p2 = await backup({ store: storeDir, source: 'vm', disks: fileRefs([disk]), changed: [changes] });
    t.ok(p2.bytesRead > changes.length * 4096, `the damaged part was re-read (${p2.bytesRead} bytes)`);
    const out = join(dir, 'o.raw');
    await restore({ store: storeDir, source: 'vm', out });
    t.equal(sha256(out), sha256(disk), 'the new point is complete');
    const v = await verify({ store: storeDir, source: 'vm', point: p2.id });
    t.same(v.bad, [], 'the new point verifies clean');
  });
}
