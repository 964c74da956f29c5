/**
 * Issue 9, D4 (store part): a FIFO (or a folder) planted in packs/, index/, points/, locks/ or in place of a
 * store file hung restores, backups, gc and listing (a blocking open for reading). Now nothing but a regular file
 * is ever opened for reading: FIFOs in index/ are quarantined, in points/ listed as damaged or ignored, in packs/
 * left alone by gc and quarantined by repair; a FIFO lock is stale. Every operation completes.
 * A hang fails the test through tap's timeout (no timed assertion).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, listPoints, prune, repair, verify, fileRefs } from '../../src/sync/index.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { buildStore, copyStore, damage, key, restoreAll } from '../storage/damage-helpers.js';

t.teardown(() => closePool());

t.test('FIFOs and folders in the store block nothing', { timeout: 120_000 }, async (t) => {
  requireTool('mkfifo');
  const dir = tempDir(t, 'sv-d4-');
  const built = await buildStore(dir);
  await gc({ store: built.store });
  const s = copyStore(built, join(dir, 's'));
  const [a, b, c] = s.points.map(key) as [string, string, string];
  for (const p of [
    join(s.store, 'index', '99999999999999999999-000000.idx'), join(s.store, 'packs', 'ffffffffffffffff.pack'), join(s.store, 'packs', 'stray'),
    join(s.store, 'points', 'vm1', '20991231T235959999Z-abcdef.json'), join(s.store, 'points', 'vm2', 'notes.json'), join(s.store, 'locks', 'gc.lock'),
    join(s.store, 'locks', 'source-vm2.lock'), join(s.store, 'points', 'vm3'), join(s.store, 'gc-refs.bin'), join(s.store, 'gc.json'), join(s.store, 'bad.json'), join(s.store, 'sources', 'vm2.json'),
  ]) damage(p, 'fifo');
  damage(join(s.store, 'index', '99999999999999999998-000000.idx'), 'folder');

  t.same(await restoreAll(s, join(dir, 'out')), { [a]: 'ok', [b]: 'ok', [c]: 'ok' }, 'every point restores');
  const vm1 = await listPoints({ store: s.store, source: 'vm1' });
  t.same(vm1.filter((p) => p.damaged).map((p) => [p.id, p.damaged ? p.error.code : '']), [['20991231T235959999Z-abcdef', 'SV_ERR_STORE_FOREIGN_FILE']], 'a FIFO named like a manifest is a damaged point');
  t.ok(existsSync(join(s.store, 'quarantine')), 'the FIFO segment went to quarantine');
  t.ok(await backup({ store: s.store, source: 'vm2', disks: fileRefs([join(dir, 'b.raw')]) }), 'vm2 backs up (FIFO lock, settings, gc.json, bad.json)');
  t.equal((await prune({ store: s.store, source: 'vm1', pointIds: ['20991231T235959999Z-abcdef'] })).removed.length, 1, 'the FIFO point is pruned explicitly');
  const r = await repair({ store: s.store });
  t.ok(r.quarantined.some((q) => q.path.endsWith('ffffffffffffffff.pack')), 'repair quarantines the FIFO pack');
  const g = await gc({ store: s.store });
  t.equal(g.mark, 'full', 'gc rebuilt its table (gc-refs.bin was a FIFO)');
  t.equal((await verify({ store: s.store })).bad.length, 0);
  t.same(await restoreAll(s, join(dir, 'out')), { [a]: 'ok', [b]: 'ok', [c]: 'ok' }, 'and every point still restores');
});
