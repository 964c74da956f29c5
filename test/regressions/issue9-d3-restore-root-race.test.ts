/**
 * Issue 9, D3: a restore queued to `restores/sub/x.img` while the job slots are busy, whose `restores/sub` is
 * then swapped for a symbolic link to a folder outside the root, wrote outside when it ran (the target was
 * checked when the request arrived; the job followed the link later). Now the folder is opened when the file
 * is written, without following links: the job fails SV_ERR_API_PATH_NOT_ALLOWED and writes nothing anywhere.
 */
import { mkdirSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { tempDir } from '../helpers/env.js';
import { backedUpAppliance, startJob } from './issue9-helpers.js';

t.teardown(() => closePool());

t.test('a restore folder swapped for a symlink while the job waits for a slot', async (t) => {
  const dir = tempDir(t, 'sv-d3-');
  const { a, engine, sourceId, pointId } = await backedUpAppliance(t, dir);
  const root = join(a.dir, 'restores');
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  mkdirSync(join(root, 'sub'), { recursive: true });

  const busy = await startJob(a, { kind: 'verify' }); // holds the only slot until released
  const r = await a.call('operator', 'POST', `/api/v1/sources/${sourceId}/points/${pointId}/restore`, { disk: 'disk0', target: join(root, 'sub', 'x.img'), format: 'raw' });
  t.equal(r.statusCode, 202, 'the target passes the check when the request arrives');
  const restore = r.json() as { id: string; state: string };
  t.equal(restore.state, 'queued');

  renameSync(join(root, 'sub'), join(root, 'sub-before'));
  symlinkSync(outside, join(root, 'sub'));
  engine.release();
  t.equal((await a.appliance.queue.waitFor(busy.id)).state, 'succeeded');
  const done = await a.appliance.queue.waitFor(restore.id);

  t.equal(done.state, 'failed', 'the restore refused to follow the link');
  t.equal(done.error?.code, 'SV_ERR_API_PATH_NOT_ALLOWED');
  t.same(readdirSync(outside), [], 'nothing written outside the root');
  t.same(readdirSync(join(root, 'sub-before')), [], 'nothing left in the original folder');

  // the same restore into a fresh nested folder (created through the confined descriptors) works
  const ok = await a.call('operator', 'POST', `/api/v1/sources/${sourceId}/points/${pointId}/restore`, { disk: 'disk0', target: join(root, 'new', 'deeper', 'x.img'), format: 'raw' });
  t.equal((await a.appliance.queue.waitFor((ok.json() as { id: string }).id)).state, 'succeeded');
  t.same(readdirSync(join(root, 'new', 'deeper')), ['x.img'], 'only the image, no temp file');
});
