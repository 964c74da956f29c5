/**
 * gc while a backup runs that reuses (dedups against) blocks which are garbage: the blocks of a pruned point of
 * another source. Whatever the interleaving (gc sweeps before or after the backup commits), the new point must
 * restore bit-identical and verify clean; when gc swept first the backup rewrites the swept blocks at commit.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, prune, restore, verify, fileRefs } from '../../src/sync/index.js';
import { tempDir } from '../helpers/env.js';
import { sha256 } from './helpers.js';

const MiB = 1 << 20;
t.teardown(closePool);

t.test('gc during a backup that reuses garbage blocks', async (t) => {
  for (const round of [0, 1, 2]) {
    const dir = tempDir(t);
    const store = join(dir, 'store');
    const a = join(dir, 'a.raw');
    const old = join(dir, 'old.raw');
    generateDisk(a, 24 * MiB, 50 + round);
    copyFileSync(a, old); // the content of a's first point
    await backup({ store, source: 'a', disks: fileRefs([a]) });
    changeDay(a, 24 * MiB, 80, 60 + round); // most blocks of point 1 become garbage once it is pruned
    await backup({ store, source: 'a', disks: fileRefs([a]) });
    await prune({ store, source: 'a', retention: { maxCount: 1 } });
    // Source "c" is the old content: every block it needs is garbage in the store right now.
    let gcRun: Promise<unknown> | undefined;
    const run = backup({ store, source: 'c', disks: fileRefs([old]), progress: () => { gcRun ??= gc({ store }); } });
    const point = await run;
    await gcRun;
    await gc({ store });
    t.same((await verify({ store })).bad, [], `round ${round}: verify clean (reused ${point.blocksNew} new blocks)`);
    const out = join(dir, 'c.raw');
    await restore({ store, source: 'c', out });
    t.equal(sha256(out), sha256(old), `round ${round}: the new point restores bit-identical`);
  }
});
