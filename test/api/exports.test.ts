/**
 * /api/v1/exports: an operator starts a writable export of a point, a real client (qemu-io) writes through
 * it, the export is listed, and stopping it with keep=true saves a new point marked madeFrom; a viewer may
 * not start one; unknown exports are 404. On an appliance with its own certificate (serve --tls-cert/--tls-key),
 * `tls: true` serves nbds:// with that certificate: nbdcopy (trusting the test CA) copies the point exactly,
 * a plain client is refused.
 */
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { backup, restore } from '../../src/sync/index.js';
import { requireTool, run, runAsync, tempDir } from '../helpers/env.js';
import { makePki } from '../nbd/pki.js';
import { makeDisk } from '../nbd/serve-image.js';
import { startTestAppliance } from './helpers.js';
import { readFileSync } from 'node:fs';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(() => closePool());

t.test('start, list and stop (keep) an export through the API', async (t) => {
  const a = await startTestAppliance(t);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: '/srv/vm1/disk0.vhdx' }] })).json() as { id: string };
  const { vhdx } = makeDisk(a.dir, 8 << 20, 3);
  const point = await backup({ store: a.appliance.config.storeDir, source: 'vm1', disks: fileRefs([vhdx]) });
  const url = `/api/v1/sources/${src.id}/points/${point.id}/exports`;

  t.equal((await a.call('viewer', 'POST', url, { writable: true })).statusCode, 403, 'viewer cannot start an export');
  const noCert = await a.call('operator', 'POST', url, { tls: true });
  t.equal(noCert.statusCode, 400, noCert.body);
  t.match(noCert.json(), { code: 'SV_ERR_NBD_BAD_EXPORT_OPTIONS' }, 'tls: true without the appliance\'s own certificate is refused');
  const started = await a.call('operator', 'POST', url, { writable: true });
  t.equal(started.statusCode, 201, started.body);
  const info = started.json() as { id: string; name: string; uri: string; writable: boolean };
  t.equal(info.name, `vm1@${point.id}/0`, 'export name');
  t.match(info.uri, /^nbd:\/\/127\.0\.0\.1:\d+\//, 'on loopback');
  t.equal((info as { tls?: boolean }).tls, false, 'plain NBD by default');

  await runAsync(requireTool('qemu-io'), ['-f', 'raw', '-c', 'write -P 0x42 65536 131072', info.uri]);
  const listed = (await a.call('operator', 'GET', '/api/v1/exports')).json() as { id: string; blocksWritten: number }[];
  t.ok(listed.length === 1 && listed[0]!.id === info.id && listed[0]!.blocksWritten === 2, 'listed with its overlay blocks');

  const stopped = await a.call('operator', 'DELETE', `/api/v1/exports/${info.id}?keep=true`);
  t.equal(stopped.statusCode, 200, stopped.body);
  const kept = (stopped.json() as { kept: { id: string; madeFrom: { instantRecovery: string } } }).kept;
  t.equal(kept.madeFrom.instantRecovery, point.id, 'kept point made from the served point');
  const out = join(a.dir, 'kept.raw');
  await restore({ store: a.appliance.config.storeDir, source: 'vm1', point: kept.id, out, format: 'raw' });
  const data = readFileSync(out);
  t.ok(data.subarray(65536, 65536 + 131072).every((b) => b === 0x42), 'the kept point holds the write');
  t.equal((await a.call('operator', 'GET', '/api/v1/exports')).json().length, 0, 'no export left');
  t.equal((await a.call('operator', 'DELETE', `/api/v1/exports/${info.id}`)).statusCode, 404, 'stopping it again: 404');
});

t.test('tls: true on an appliance with its own certificate serves nbds:// with it', async (t) => {
  const pki = makePki(tempDir(t));
  const a = await startTestAppliance(t, { tls: { certFile: pki.cert, keyFile: pki.key } });
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vm1', disks: [{ name: 'disk0', path: '/srv/vm1/disk0.vhdx' }] })).json() as { id: string };
  const { raw, vhdx } = makeDisk(a.dir, 8 << 20, 5);
  const point = await backup({ store: a.appliance.config.storeDir, source: 'vm1', disks: fileRefs([vhdx]) });
  const started = await a.call('operator', 'POST', `/api/v1/sources/${src.id}/points/${point.id}/exports`, { tls: true });
  t.equal(started.statusCode, 201, started.body);
  const info = started.json() as { id: string; uri: string; tls: boolean };
  t.equal(info.tls, true, 'tls in the export info');
  t.match(info.uri, /^nbds:\/\/127\.0\.0\.1:\d+\//, 'an nbds:// URI on loopback');
  const out = join(a.dir, 'copy.raw');
  // libnbd reads the CA from the folder of ca-cert.pem
  await runAsync(requireTool('nbdcopy'), [`${info.uri}?tls-certificates=${join(pki.ca, '..')}`, out]);
  t.equal(run(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'raw', out, raw]).trim(), 'Images are identical.', 'nbdcopy over TLS copies the point exactly');
  await t.rejects(runAsync(requireTool('nbdinfo'), [info.uri.replace(/^nbds:/, 'nbd:')]), 'a plain client is refused');
  t.equal((await a.call('operator', 'DELETE', `/api/v1/exports/${info.id}`)).statusCode, 200, 'stopped');
});
