/**
 * Issue 9: verify's bad-block lines named no pack file or offset. Now each bad blob names the pack file and the
 * offset of its record (CLI text and JSON), and the offset is where that record really is.
 */
import { openSync, readSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { tempDir } from '../helpers/env.js';
import { buildStore, key } from '../storage/damage-helpers.js';
import { closePool } from '../../src/pool/index.js';
import { sv } from '../sync/helpers.js';
import { RECORD_HEADER_SIZE } from '../../storage/layout.js';

t.teardown(() => closePool());

t.test('bad blocks name their pack and record offset', async (t) => {
  const dir = tempDir(t, 'sv-vp-');
  const built = await buildStore(dir);
  const pack = built.packOf.get(key(built.points[2]!))!;
  const bytes = readFileSync(pack);
  const at = bytes.length - 100; // inside the last record's payload
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(pack, bytes);
  const r = sv(['verify', '--store', built.store, '--json']);
  t.equal(r.code, 1, r.stderr);
  const bad = (JSON.parse(r.stdout) as { bad: Array<{ pack: string; offset: number; digest: string; points: string[] }> }).bad;
  t.equal(bad.length, 1);
  t.equal(bad[0]!.pack, pack);
  t.ok(bad[0]!.offset < at && at < bytes.length, `record at ${bad[0]!.offset} holds the flipped byte`);
  const head = Buffer.alloc(RECORD_HEADER_SIZE);
  const fd = openSync(pack, 'r');
  readSync(fd, head, 0, RECORD_HEADER_SIZE, bad[0]!.offset);
  closeSync(fd);
  t.equal(head.subarray(0, 32).toString('hex'), bad[0]!.digest, 'the offset is the start of that blob\'s record');
  const text = sv(['verify', '--store', built.store]);
  t.match(text.stdout, new RegExp(`bad (block|page) ${bad[0]!.digest} \\(pack ${pack} record at offset ${bad[0]!.offset}\\)`));
});
