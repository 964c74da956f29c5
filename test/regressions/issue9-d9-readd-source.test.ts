/**
 * Issue 9, D9: deleting a source and adding a new one with the same name silently attached the old VM's
 * points to it. Now the add is refused (SV_ERR_API_SOURCE_HAS_POINTS, saying how to go on) unless it asks to
 * continue the series (`attach: true`, CLI --attach); an attached source whose disk has another size backs up
 * (a new initial copy) instead of failing for good. Each point keeps the disk names it was made with: an earlier
 * source's point is found by its own names (and its manifest's file names) after the source is added again.
 */
import { join } from 'node:path';
import t from 'tap';
import { ThreadedEngine } from '../../src/appliance/engine/threaded.js';
import type { Job } from '../../src/appliance/model.js';
import { tempDir } from '../helpers/env.js';
import { startTestAppliance } from '../api/helpers.js';
import { makeRawImage } from '../appliance/images.js';

t.test('re-adding a source name: refused without attach, continues the series with it', async (t) => {
  const dir = tempDir(t, 'sv-d9-readd-');
  const engine = new ThreadedEngine(join(dir, 'store'));
  const ta = await startTestAppliance(t, { deps: { engine }, sourceRoots: [dir] });
  const q = ta.appliance.queue;
  const disk = join(dir, 'vm1.img');
  makeRawImage(disk, 4, 4, 1);
  const add = (body: Record<string, unknown>) => ta.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: disk }], ...body });
  const backupOf = async (sourceId: string): Promise<Job> => q.waitFor((await q.enqueue({ kind: 'backup', trigger: 'api', sourceId, params: { tag: 'manual' } })).id);

  const first = (await add({})).json<{ id: string }>();
  t.equal((await backupOf(first.id)).state, 'succeeded');
  t.equal((await ta.call('admin', 'DELETE', `/api/v1/sources/${first.id}`)).statusCode, 204);

  const refused = await add({});
  t.equal(refused.statusCode, 409);
  t.equal(refused.json<{ code: string }>().code, 'SV_ERR_API_SOURCE_HAS_POINTS');
  t.match(refused.json<{ message: string }>().message, /1 recovery point.*--attach/);

  makeRawImage(disk, 8, 8, 2); // the new VM of that name has a bigger disk
  const again = await ta.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'system', path: disk }], attach: true }); // its disk named otherwise
  t.equal(again.statusCode, 201, again.body);
  const id = again.json<{ id: string }>().id;
  const done = await backupOf(id);
  t.equal(done.state, 'succeeded', JSON.stringify(done.error));
  const points = (await ta.call('viewer', 'GET', `/api/v1/sources/${id}/points`)).json<{ disks: { initial?: boolean; reason?: string }[] }[]>();
  t.equal(points.length, 2, 'the attached source continues the old series');
  t.same(points[1]!.disks[0], { ...points[1]!.disks[0], initial: true, reason: `size changed from ${4 << 20} to ${8 << 20}` }, 'the resized disk is a new initial copy, visible in the API');
  // each point keeps the disk names it was made with (its own record, not the source as it is now)
  const named = points as unknown as Array<{ id: string; disks: Array<{ name: string; file: string }> }>;
  t.same(named.map((p) => p.disks.map((d) => d.name)), [['disk0'], ['system']], 'each point lists the disk name it was made with');
  const image = (p: number, name: string) => ta.call('operator', 'GET', `/api/v1/sources/${id}/points/${named[p]!.id}/disks/${name}/image`);
  t.equal((await image(0, 'disk0')).rawPayload.length, 4 << 20, 'the earlier source\'s point downloads by its disk name');
  t.equal((await image(0, 'vm1.img')).rawPayload.length, 4 << 20, 'and by the file name its manifest records');
  t.equal((await image(1, 'system')).rawPayload.length, 8 << 20, 'the new point by the new name');
  const none = await image(0, 'system');
  t.equal(none.statusCode, 404);
  t.match(none.json(), { code: 'SV_ERR_SYNC_DISK_NOT_FOUND', message: /no disk "system" \(it has disk0\)/, details: { disks: ['disk0'] } }, 'a name the point does not have: a coded error naming its disks');
});
