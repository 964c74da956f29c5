/**
 * Issue 9, D2 through the appliance: a data source disk takes an optional `format` (raw, vhd, vhdx) that the
 * executor and the engine pass to the image opener. Without it, a raw LUN that carries the traces of a damaged
 * VHDX is refused (the backup job fails with SV_ERR_VHDX_SIGNATURE) instead of being read as raw silently;
 * with `format: "raw"` it backs up as the raw disk it is.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import type { DataSource, Job } from '../../src/appliance/model.js';
import { closePool } from '../../src/pool/index.js';
import { startTestAppliance, type TestAppliance } from '../api/helpers.js';
import { tempDir } from '../helpers/env.js';
import { fixture } from '../formats/vhd-fixture-helpers.js';

t.teardown(() => closePool());

async function backupJob(a: TestAppliance, sourceId: string): Promise<Job> {
  const r = await a.call('operator', 'POST', '/api/v1/jobs', { kind: 'backup', sourceId });
  if (r.statusCode !== 202) throw new Error(`start job: ${r.statusCode} ${r.body}`);
  return a.appliance.queue.waitFor((r.json() as Job).id);
}

t.test('a source disk\'s format reaches the opener', async (t) => {
  const dir = tempDir(t, 'sv-fmt-');
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), deps: { engine: new SyncEngine(join(dir, 'data', 'store')) } });
  mkdirSync(join(dir, 'data', 'sources'), { recursive: true });
  const lun = join(dir, 'data', 'sources', 'lun.img'); // under the default source root
  const bytes = readFileSync(fixture(dir, 'win10-dynamic.vhdx.gz'));
  bytes.write('VHDXFILE', 0, 'latin1'); // damaged identifier, headers and region tables intact
  writeFileSync(lun, bytes);

  const bad = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm', disks: [{ name: 'disk0', path: lun, format: 'qcow2' }] });
  t.equal(bad.statusCode, 400, 'an unknown format is refused by the schema');
  const created = await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm', disks: [{ name: 'disk0', path: lun }] });
  t.equal(created.statusCode, 201, created.body);
  const src = created.json() as DataSource;

  const refused = await backupJob(a, src.id);
  t.equal(refused.state, 'failed');
  t.equal(refused.error?.code, 'SV_ERR_VHDX_SIGNATURE', JSON.stringify(refused.error));

  const patched = await a.call('admin', 'PATCH', `/api/v1/sources/${src.id}`, { disks: [{ name: 'disk0', path: lun, format: 'raw' }] });
  t.equal(patched.statusCode, 200, patched.body);
  t.same((patched.json() as DataSource).disks, [{ name: 'disk0', path: lun, format: 'raw' }], 'the reply carries the format');
  const listed = (await a.call('viewer', 'GET', '/api/v1/sources')).json() as DataSource[];
  t.equal(listed[0]?.disks[0]?.format, 'raw');

  const ok = await backupJob(a, src.id);
  t.equal(ok.state, 'succeeded', JSON.stringify(ok.error));
  const pts = (await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as { disks: { virtualSize: number }[] }[];
  t.equal(pts[0]?.disks[0]?.virtualSize, bytes.length, 'backed up as a raw disk of the file\'s size');
});
