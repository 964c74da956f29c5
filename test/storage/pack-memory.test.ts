/**
 * Packs built in memory (storage/pack-memory.ts), through PackWriter on an S3 backend (s3rver on loopback): the
 * packs in the bucket are byte for byte the packs a folder store's writer stages for the same records (rotation,
 * a record larger than the buffer's slack, more packs than PUTS_IN_FLIGHT so the writer waits for its puts), no
 * staging file is written, and abort() removes what was put.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FsBackend } from '../../storage/backend/fs.js';
import { packFileName } from '../../storage/layout.js';
import { PackWriter } from '../../storage/pack.js';
import { startS3rver } from '../helpers/s3rver.js';
import { tempDir } from '../helpers/env.js';
import { listAll, openOn } from './backend-s3-checks.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const server = await startS3rver(t);
await server.bucket('packs');

/** Deterministic records: the same digests and payloads for both writers. */
function records(n: number): Array<{ digest: Buffer; payload: Buffer; flag: number }> {
  return Array.from({ length: n }, (_, i) => {
    const size = i === 7 ? 1536 * 1024 : 1000 + ((i * 7919) % 40_000); // record 7 is larger than the slack (1 MiB)
    const payload = createHash('sha256').update(`seed-${i}`).digest();
    return { digest: createHash('sha256').update(`digest-${i}`).digest(), payload: Buffer.alloc(size, payload), flag: 1 + (i % 2) };
  });
}

t.test('packs built in memory are put byte for byte as a folder store stages them; no staging file', async (t) => {
  const s3 = await openOn(server, server.ref('packs', 'm/'));
  t.teardown(() => s3.close());
  const staging = join(tempDir(t), 'staging');
  const mem = new PackWriter(s3, 256 * 1024, staging);
  const fsDir = tempDir(t);
  const staged = new PackWriter(new FsBackend(fsDir), 256 * 1024);
  const recs = records(60);
  const memLocs = [];
  const fsLocs = [];
  for (const r of recs) {
    memLocs.push(await mem.append(r.digest, r.flag, r.payload.length * 2, r.payload));
    fsLocs.push(await staged.append(r.digest, r.flag, r.payload.length * 2, r.payload));
  }
  await mem.finish();
  await staged.finish();
  t.ok(mem.created.length > 3, `${mem.created.length} packs: more than the puts in flight, so the writer waited for its puts`);
  t.equal(mem.created.length, staged.created.length, 'as many packs as the staging writer');
  t.notOk(existsSync(staging), 'no staging folder (nothing written locally)');
  const listed = (await listAll(s3, 'packs/')).map((o) => o.key).sort();
  t.same(listed, mem.created.map((id) => `packs/${packFileName(id)}`).sort(), 'every pack is in the bucket');
  t.same(memLocs.map((l) => [l.offset, l.storedLength, l.rawLength, l.flag]), fsLocs.map((l) => [l.offset, l.storedLength, l.rawLength, l.flag]), 'the same record offsets');
  for (let i = 0; i < mem.created.length; i++) {
    const stored = await s3.get(`packs/${packFileName(mem.created[i]!)}`);
    const file = readFileSync(join(fsDir, 'packs', packFileName(staged.created[i]!)));
    // The pack id is in the header (bytes 16-24) and differs; everything else must be the same bytes.
    stored.fill(0, 16, 24);
    file.fill(0, 16, 24);
    t.ok(stored.equals(file), `pack ${i}: ${stored.length} bytes, identical to the staged pack apart from its id`);
  }
});

t.test('abort() of a writer building packs in memory removes the packs it put', async (t) => {
  const s3 = await openOn(server, server.ref('packs', 'a/'));
  t.teardown(() => s3.close());
  const w = new PackWriter(s3, 64 * 1024, join(tempDir(t), 'staging'));
  for (let i = 0; i < 40; i++) await w.append(randomBytes(32), 1, 16384, randomBytes(16384));
  t.ok(w.created.length > 3, `${w.created.length} packs made`);
  await w.abort();
  t.same(await listAll(s3, 'packs/'), [], 'no pack is left in the bucket');
  await t.rejects(w.append(randomBytes(32), 1, 10, randomBytes(10)), { code: 'SV_ERR_CORE_CANCELLED' }, 'appends after abort fail');
});
