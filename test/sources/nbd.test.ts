/**
 * The `nbd` disk source through the shared contract (test/sources/contract.ts), against real servers:
 * qemu-nbd --read-only of a qcow2 holding the test image's bytes (zero blocks left unallocated by qemu-img),
 * and nbdkit's file plugin serving the raw file. Plus: a server that goes away makes calls fail with a coded
 * NBD error (never zeros).
 */
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { closePool } from '../../src/pool/index.js';
import { openDiskSource } from '../../src/sources/registry.js';
import { COMPRESSION_LEVEL } from '../../storage/layout.js';
import { run, requireTool, tempDir } from '../helpers/env.js';
import { nbdkit, startPeer } from '../nbd/peers.js';
import { BS, sourceContract, writeTestImage } from './contract.js';

t.teardown(closePool);

sourceContract(t, 'nbd (qemu-nbd, qcow2)', async (t, rawPath, dir) => {
  const qcow2 = join(dir, 'disk.qcow2');
  run(requireTool('qemu-img'), ['convert', '-f', 'raw', '-O', 'qcow2', rawPath, qcow2]);
  const sock = join(dir, 'qemu-nbd.sock');
  // The default --shared=1: the source needs one connection only.
  await startPeer(t, 'qemu-nbd', ['--read-only', '--persistent', '-f', 'qcow2', '-x', 'vda', '-k', sock, qcow2], sock);
  return { kind: 'nbd', socket: sock, exportName: 'vda', name: 'vda.qcow2' };
}, { transfer: 'payload' });

sourceContract(t, 'nbd (nbdkit, file plugin)', async (t, rawPath, dir) => {
  const sock = await nbdkit(t, dir, ['file', `file=${rawPath}`]);
  return { kind: 'nbd', socket: sock, exportName: '', name: 'disk.raw' };
}, { transfer: 'payload' });

t.test('nbd: a server that goes away fails the calls with a coded error', async (t) => {
  const dir = tempDir(t, 'sv-source-');
  const raw = join(dir, 'disk.raw');
  writeTestImage(raw);
  const sock = join(dir, 'k.sock');
  const child = await startPeer(t, 'nbdkit', ['-f', '-U', sock, 'file', `file=${raw}`], sock);
  const s = await openDiskSource({ kind: 'nbd', socket: sock, exportName: '', name: 'x' });
  t.teardown(() => s.close());
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  const err = await s.backupRange({ offset: 0, length: 4 * BS, blockSize: BS, level: COMPRESSION_LEVEL, oldDigests: null }).then(() => null, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_NBD_CLOSED', 'SV_ERR_NBD_CONNECT', 'SV_ERR_NBD_PROTOCOL'), `coded: ${(err as { code?: string } | null)?.code ?? 'resolved'}`);
  const conn = await openDiskSource({ kind: 'nbd', socket: sock, exportName: '', name: 'x' }).then(() => null, (e: unknown) => e);
  t.ok(hasCode(conn, 'SV_ERR_NBD_CONNECT'), `opening a gone server: ${(conn as { code?: string } | null)?.code ?? 'opened'}`);
});
