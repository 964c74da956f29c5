/**
 * Restore's compact chunk reads (PointDiskReader.readBlocks, the worker's `compact` mode decoding with
 * unpackBlockInto): a disk whose zero regions hold a few scattered changed blocks (the benchmark's day 3) and
 * whose size is not a multiple of the block size restores bit-identical, sparse where zero; readBlocks agrees
 * with readChunk block by block; a damaged stored block fails the restore with a coded error (no output).
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, listPoints, openStore, restore, fileRefs } from '../../src/sync/index.js';
import { PointDiskReader } from '../../src/sync/restore.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from './helpers.js';

t.teardown(closePool);

const MiB = 1 << 20;

async function makeStore(dir: string): Promise<{ disk: string; store: string }> {
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  generateDisk(disk, 32 * MiB, 7);
  const fd = openSync(disk, 'r+');
  writeSync(fd, Buffer.from('a short tail block'), 0, 18, 32 * MiB + 1000); // size not a multiple of 64 KiB
  closeSync(fd);
  await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  const changes = changeDay(disk, 32 * MiB, 5, 3); // scattered blocks, some inside zero regions
  await backup({ store, source: 'vm', disks: fileRefs([disk]), changed: [changes] });
  return { disk, store };
}

t.test('a scattered day-3 point with a short tail block restores bit-identical and sparse', async (t) => {
  const dir = tempDir(t);
  const { disk, store } = await makeStore(dir);
  const out = join(dir, 'out.raw');
  const r = await restore({ store, source: 'vm', out, format: 'raw' });
  t.equal(statSync(out).size, statSync(disk).size, 'size');
  t.equal(sha256(out), sha256(disk), 'bytes');
  t.ok(r.bytesWritten < statSync(disk).size, `only non-zero blocks written (${r.bytesWritten} bytes)`);
  t.ok(statSync(out).blocks * 512 < statSync(disk).size, 'zero blocks left as holes');
});

t.test('readBlocks agrees with readChunk', async (t) => {
  const dir = tempDir(t);
  const { disk, store } = await makeStore(dir);
  const s = await openStore(store);
  const m = await s.resolvePoint('vm', undefined);
  const reader = new PointDiskReader(s.ref, await s.loadIndex(), m, m.disks[0]!);
  await reader.open();
  const bytes = readFileSync(disk);
  const vs = m.disks[0]!.virtualSize;
  const chunk = 8 * MiB;
  let present = 0;
  let nullChunks = 0;
  try {
    for (let off = 0; off < vs; off += chunk) {
      const len = Math.min(chunk, vs - off);
      const full = await reader.readChunk(off, len);
      const compact = await reader.readBlocks(off, len);
      if (!full || !compact) {
        t.equal(full, compact, `chunk at ${off}: both null`);
        t.ok(bytes.subarray(off, off + len).every((x) => x === 0), `chunk at ${off} is zero`);
        nullChunks++;
        continue;
      }
      t.ok(full.equals(bytes.subarray(off, off + len)), `chunk at ${off}: readChunk bytes`);
      let at = 0;
      for (let j = 0; j < compact.at.length; j++) {
        const o = compact.at[j]!;
        const size = compact.sizes[j]!;
        if (!compact.data.subarray(at, at + size).equals(full.subarray(o, o + size))) t.fail(`chunk at ${off}: block at ${o} differs`);
        at += size;
        present++;
      }
      t.equal(at, compact.data.length, `chunk at ${off}: data is exactly the present blocks`);
      // Every block not listed is zero.
      const listed = new Set(compact.at);
      for (let o = 0; o < len; o += 65536) if (!listed.has(o) && !full.subarray(o, o + 65536).every((x) => x === 0)) t.fail(`chunk at ${off}: block at ${o} missing`);
    }
  } finally {
    reader.close();
  }
  t.ok(present > 0, `${present} blocks compared, ${nullChunks} all-zero chunks`);
});

t.test('a flipped byte in a stored block fails the restore with a coded error', async (t) => {
  const dir = tempDir(t);
  const { store } = await makeStore(dir);
  const packs = join(store, 'packs');
  const biggest = readdirSync(packs).map((f) => join(packs, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const fd = openSync(biggest, 'r+');
  writeSync(fd, Buffer.from([0x5a]), 0, 1, Math.floor(statSync(biggest).size / 2));
  closeSync(fd);
  const out = join(dir, 'bad.raw');
  const first = (await listPoints({ store, source: 'vm' }))[0]!; // names every blob of the day-1 pack
  await t.rejects(restore({ store, source: 'vm', point: first.id, out, format: 'raw' }), { code: /^SV_ERR_(NATIVE|STORE)_[A-Z_]+$/ });
  t.notOk(existsSync(out), 'no output file left');
});
