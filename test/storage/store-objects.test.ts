/**
 * The store's logic talks only to the backend interface: a SIMULATION of a non-folder store (an FsBackend in a
 * private folder, registered under an s3 reference in this process only; the real S3 backend is helper work in
 * storage/backend/s3*.ts) goes through backup (packs staged in the local folder and put as {file}), point
 * listing, page reads through ranged gets (BackendPackReader), the worker's block reads (readBlobsTask, called in
 * this thread where the simulated kind is registered), prune and gc (orphans by createdMs + running markers).
 * Nothing of the store is created in the local folder except locks, running markers and staging.
 */
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { backup, fileRefs, gc, prune } from '../../src/sync/index.js';
import { FsBackend } from '../../storage/backend/fs.js';
import { registerBackend } from '../../storage/backend/open.js';
import type { S3BackendRef } from '../../storage/backend/types.js';
import { WrappedBackend } from '../../storage/backend/wrap.js';
import { BlobReader } from '../../storage/blobs.js';
import { Store } from '../../storage/store.js';
import { loadLevels, treeShape } from '../../storage/tree.js';
import { readBlobsTask } from '../../workers/store-task.js';
import { tempDir } from '../helpers/env.js';

t.teardown(closePool);

/** An FsBackend that presents itself as another kind (so the store takes its non-folder paths). */
class Simulated extends WrappedBackend {
  readonly #ref: S3BackendRef;
  constructor(inner: FsBackend, ref: S3BackendRef) {
    super(inner);
    this.#ref = ref;
  }
  override get ref(): S3BackendRef {
    return this.#ref;
  }
  override get location(): string {
    return `s3://${this.#ref.bucket}/${this.#ref.prefix}`;
  }
}

t.test('backup, read, prune and gc through the interface only (simulated object store)', async (t) => {
  const root = tempDir(t);
  const objects = join(root, 'objects');
  const local = join(root, 'local');
  const ref: S3BackendRef = { kind: 's3', bucket: 'sim-bucket', prefix: 'store/', endpoint: null, region: 'us-east-1', forcePathStyle: true, rateLimit: 0, objectLock: null, readOnly: false };
  registerBackend('s3', async () => new Simulated(new FsBackend(objects), ref));
  const store = await Store.open(ref, { create: true, localDir: local });
  t.equal(store.ref.kind, 's3');
  const disk = join(root, 'disk.raw');
  const body = Buffer.alloc(1 << 20);
  for (let i = 0; i < body.length; i += 4096) body.write(`block at ${i} `.repeat(200), i, 4096);
  writeFileSync(disk, body);
  const p1 = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  body.write('changed '.repeat(100), 300_000);
  writeFileSync(disk, body);
  const p2 = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  t.same((await store.listPoints('vm')).map((p) => p.id), [p1.id, p2.id], 'both points listed from the objects');
  t.ok(readdirSync(join(objects, 'packs')).length > 0, 'packs are objects');
  // Packs are built in memory since b622cc7 (storage/pack-memory.ts): the staging folder may never be made.
  const staging = join(local, 'staging');
  t.same(existsSync(staging) ? readdirSync(staging) : [], [], 'nothing staged is left after the commits');
  t.notOk(existsSync(join(local, 'points')) || existsSync(join(local, 'index')) || existsSync(join(local, 'packs')), 'no store data in the local folder');

  const m = await store.readPoint('vm', p2.id);
  const d = m.disks[0]!;
  const index = await store.loadIndex();
  const reader = new BlobReader(store.ref, index);
  const shape = treeShape(d.virtualSize, m.blockSize, m.fanout);
  const levels = await loadLevels(reader.readPage, shape, Buffer.from(d.root, 'hex'));
  t.equal(levels[0]!.length, 32, 'the root read with a ranged get');
  t.equal(shape.levelCounts[0], 1, 'one leaf page');
  const leaf = await reader.readPage(levels[0]!.subarray(0, 32));
  const digests: Buffer[] = [];
  for (let b = 0; b < shape.blockCount; b++) digests.push(leaf.subarray(b * 32, b * 32 + 32));
  const locs = digests.map((dg) => index.lookup(dg)!);
  const r = await readBlobsTask({
    store: store.ref, mode: 'read', digests: Buffer.concat(digests), packIds: BigUint64Array.from(locs.map((l) => l.packId)),
    offsets: Uint32Array.from(locs.map((l) => l.offset)), storedLengths: Uint32Array.from(locs.map((l) => l.storedLength)),
    rawLengths: Uint32Array.from(locs.map((l) => l.rawLength)), flags: Uint8Array.from(locs.map((l) => l.flag)),
    outOffsets: Uint32Array.from(digests.map((_, i) => i * m.blockSize)), outLength: d.virtualSize,
  });
  const out = Buffer.from(r.value.output);
  t.ok(out.equals(body), 'the worker\'s block reads through getRange give the disk back bit-identical');

  writeFileSync(join(objects, 'packs', '00000000000000ff.pack'), 'an orphan of a killed backup an hour ago');
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(objects, 'packs', '00000000000000ff.pack'), hourAgo, hourAgo);
  writeFileSync(join(objects, 'packs', '00000000000000fe.pack'), 'unnamed, created within the grace period (clock skew): kept');
  const res = await prune({ store, source: 'vm', pointIds: [p1.id] });
  t.same(res.removed, [p1.id], 'prune deletes the manifest object');
  const g = await gc({ store });
  t.ok(g.orphansDeleted >= 1, `gc deleted the orphan pack (createdMs before the cutoff): ${g.orphansDeleted}`);
  t.notOk(existsSync(join(objects, 'packs', '00000000000000ff.pack')), 'the old orphan is gone');
  t.ok(existsSync(join(objects, 'packs', '00000000000000fe.pack')), 'the young one is kept (created after the cutoff: the measured store clock less ORPHAN_GRACE_S3_MS)');
  const again = new BlobReader(store.ref, await store.loadIndex());
  const after = await loadLevels(again.readPage, shape, Buffer.from(d.root, 'hex'));
  t.ok((await again.readPage(after[0]!.subarray(0, 32))).equals(leaf), 'the kept point still reads after gc');
});
