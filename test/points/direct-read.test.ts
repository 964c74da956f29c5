/**
 * The worker's direct reads (workers/store-task.ts readDirect): stored-raw records read with one preadv
 * straight into the output. A disk of random bytes (every block stored raw) with zero blocks between data and a
 * short tail block reads back bit-identical through readChunk (zeros between blocks) and readBlocks (compact);
 * a flipped payload byte fails with SV_ERR_NATIVE_DIGEST_MISMATCH, a damaged record header and a cut pack with
 * SV_ERR_STORE_CORRUPT_PACK (nothing is returned). A point image with `inlineBytes` (the CLI's setting) decodes
 * a 1 MiB read on the calling thread: no task reaches the worker pool.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool, poolStats } from '../../src/pool/index.js';
import { openPointImage } from '../../src/points/image.js';
import { BlobCache } from '../../src/points/cache.js';
import { backup, fileRefs, openStore } from '../../src/sync/index.js';
import { PointDiskReader } from '../../src/sync/point-reader.js';
import { hasCode } from '../../src/errors/index.js';
import { PACK_HEADER_SIZE } from '../../storage/layout.js';
import { tempDir } from '../helpers/env.js';

t.teardown(closePool);

const BS = 64 * 1024;
const SIZE = 40 * BS + 1000; // a short tail block

async function setUp(t: Parameters<typeof tempDir>[0]): Promise<{ bytes: Buffer; store: string; reader: () => Promise<PointDiskReader> }> {
  const dir = tempDir(t);
  const bytes = randomFillSync(Buffer.alloc(SIZE));
  for (const b of [3, 4, 17, 30]) bytes.fill(0, b * BS, (b + 1) * BS); // holes between raw blocks
  const disk = join(dir, 'disk.raw');
  writeFileSync(disk, bytes);
  const store = join(dir, 'store');
  await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  const reader = async (): Promise<PointDiskReader> => {
    const s = await openStore(store);
    const m = await s.resolvePoint('vm', undefined);
    const r = new PointDiskReader(s.ref, await s.loadIndex(), m, m.disks[0]!);
    await r.open();
    return r;
  };
  return { bytes, store, reader };
}

function packOf(store: string): string {
  return join(store, 'packs', readdirSync(join(store, 'packs')).find((n) => n.endsWith('.pack'))!);
}

t.test('raw records read straight into the output: readChunk and readBlocks', async (t) => {
  const { bytes, reader } = await setUp(t);
  const r = await reader();
  const all = await r.readChunk(0, SIZE);
  t.ok(all && all.equals(bytes), 'the whole disk, zeros between blocks, short tail');
  const part = await r.readChunk(2 * BS, 20 * BS);
  t.ok(part && part.equals(bytes.subarray(2 * BS, 22 * BS)), 'a range starting and ending at holes');
  const compact = await r.readBlocks(0, SIZE);
  t.ok(compact, 'blocks present');
  let at = 0;
  for (let i = 0; i < compact!.at.length; i++) {
    const off = compact!.at[i]!;
    const len = compact!.sizes[i]!;
    t.ok(compact!.data.subarray(at, at + len).equals(bytes.subarray(off, off + len)), `compact block at ${off}`);
    at += len;
  }
  t.equal(at, compact!.data.length, 'compact output holds exactly the present blocks');
});

async function failure(read: () => Promise<unknown>): Promise<unknown> {
  try {
    await read();
  } catch (err) {
    return err;
  }
  return undefined;
}

t.test('damage is caught on the direct path', async (t) => {
  const { store, reader } = await setUp(t);
  const pack = packOf(store);
  const original = readFileSync(pack);
  const poke = (pos: number): void => {
    const fd = openSync(pack, 'r+');
    writeSync(fd, Buffer.from([original[pos]! ^ 0xff]), 0, 1, pos);
    closeSync(fd);
  };
  const restoreOriginal = (): void => writeFileSync(pack, original);

  poke(original.length - 5000); // inside a payload near the end
  let err = await failure(async () => (await reader()).readChunk(0, SIZE));
  t.ok(hasCode(err, 'SV_ERR_NATIVE_DIGEST_MISMATCH'), `a flipped payload byte: ${String(err)}`);
  t.match(String(err), /its bytes do not have its digest/, 'caught by the direct path\'s check');
  restoreOriginal();

  poke(PACK_HEADER_SIZE + 8); // inside the first record's header (the disk's first block: data is packed first)
  err = await failure(async () => (await reader()).readChunk(0, SIZE));
  t.ok(hasCode(err, 'SV_ERR_STORE_CORRUPT_PACK'), `a damaged record header: ${String(err)}`);
  restoreOriginal();

  truncateSync(pack, statSync(pack).size - 100);
  err = await failure(async () => (await reader()).readChunk(0, SIZE));
  t.ok(hasCode(err, 'SV_ERR_STORE_CORRUPT_PACK'), `a cut pack: ${String(err)}`);
  restoreOriginal();
  const ok = await (await reader()).readChunk(0, SIZE);
  t.ok(ok, 'reads again once the pack is whole');
});

t.test('inlineBytes: a 1 MiB read decodes on this thread', async (t) => {
  const { bytes, store } = await setUp(t);
  await closePool();
  const before = poolStats().completed;
  const img = await openPointImage({ store, source: 'vm', inlineBytes: 4 << 20, cache: new BlobCache(), hold: false });
  try {
    t.ok((await img.read(BS, 1 << 20)).equals(bytes.subarray(BS, BS + (1 << 20))), 'the bytes');
  } finally {
    await img.close();
  }
  t.equal(poolStats().threads, 0, 'no worker thread started');
  t.equal(poolStats().completed, before, 'no pool task');
});
