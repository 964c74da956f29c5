/**
 * A killed exporter's scratch folder: `shadowvault export --writable` (a real CLI process) is killed with
 * SIGKILL while serving; a second writable export on the same store and scratch root removes the dead one's
 * folder and keeps its own (live) one, which a third look, from this process, also keeps. The killed exporter's
 * hold on the point stops counting (issue 12: "a killed exporter's hold expires").
 */
import { once } from 'node:events';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { fileRefs } from '../../src/sources/file.js';
import { backup } from '../../src/sync/index.js';
import { removeStaleScratch } from '../../src/export/stale-scratch.js';
import { tempDir } from '../helpers/env.js';
import { startExporter } from '../helpers/exporter.js';
import { listHolds } from '../../storage/holds.js';
import { Store } from '../../storage/store.js';

t.teardown(() => closePool());

t.test('the next writable export removes a killed exporter\'s scratch folder, never a live one', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const scratch = join(dir, 'scratch');
  mkdirSync(scratch);
  const disk = join(dir, 'd.raw');
  writeFileSync(disk, Buffer.alloc(4 << 20, 7));
  const point = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  const common = [`vm@${point.id}`, '--store', store, '--scratch', scratch];

  const { child: first } = await startExporter(t, [...common, '--socket', join(dir, 'a.sock'), '--writable']);
  const firstDirs = readdirSync(scratch);
  t.equal(firstDirs.length, 1, `one scratch folder while the first export runs: ${firstDirs}`);
  t.match(firstDirs[0], new RegExp(`^sv-export-${first.pid}-\\d+-`), 'named with the exporter\'s pid and start time');
  const opened = await Store.open(store);
  t.same((await listHolds(opened, 'vm')).get(point.id)?.map((h) => h.pid), [first.pid], 'the exporter holds the point');
  first.kill('SIGKILL');
  await once(first, 'exit');
  t.same(readdirSync(scratch), firstDirs, 'kill -9 leaves the folder behind');
  t.equal((await listHolds(opened, 'vm')).size, 0, 'the killed exporter\'s hold no longer counts (prune and gc may take the point)');

  const { child: second } = await startExporter(t, [...common, '--socket', join(dir, 'b.sock'), '--writable']);
  const after = readdirSync(scratch);
  t.equal(after.length, 1, `only the live export's folder is left: ${after}`);
  t.not(after[0], firstDirs[0], 'the dead exporter\'s folder is gone');
  t.match(after[0], new RegExp(`^sv-export-${second.pid}-`), 'the live exporter\'s folder is kept');
  t.same(await removeStaleScratch(scratch), [], 'a cleanup from another process keeps the live folder too');
  second.kill('SIGTERM');
  const [code] = await once(second, 'exit');
  t.equal(code, 0, 'the live exporter stops cleanly');
  t.same(readdirSync(scratch), [], 'and removes its own folder');
});
