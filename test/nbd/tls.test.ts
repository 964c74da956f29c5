/**
 * NBD over TLS (forced TLS: NBD_OPT_STARTTLS) against real peers. A CA and a server certificate
 * (SAN 127.0.0.1, localhost) are made with openssl; libnbd's nbdcopy and nbdinfo read the export through
 * `nbds://` and qemu-img compares it over TLS (tls-creds-x509) with the disk; a plain client is refused
 * with NBD_REP_ERR_TLS_REQD, garbage instead of a ClientHello drops only that client, STARTTLS twice is an
 * error reply, and a bad certificate file gets a coded error. One server serves all cases. Then the CLI:
 * `export --tls-cert/--tls-key` serves a recovery point over nbds:// to nbdcopy; half or bad TLS options fail
 * with codes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { fileRefs } from '../../src/sources/file.js';
import { backup } from '../../src/sync/index.js';
import { cliInProcess } from '../helpers/cli.js';
import { encodeClientFlags, encodeOption } from '../../src/nbd/codec.js';
import { NbdClient } from '../../src/nbd/client.js';
import { readTlsPair } from '../../src/nbd/tls-files.js';
import { NbdServer } from '../../src/nbd/server.js';
import { ExportTable } from '../../src/export/table.js';
import { CLIENT_FLAG, OPT, REP } from '../../src/nbd/protocol.js';
import { requireTool, run, runAsync, tempDir } from '../helpers/env.js';
import { startExporter } from '../helpers/exporter.js';
import { makePki } from './pki.js';
import { makeDisk, serveImage } from './serve-image.js';
import { handshakeStart, optionReply, readN } from './raw-options.js';

const SIZE = 8 << 20;

const closed = (s: Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

t.test('NBD over TLS', async (t) => {
  const dir = tempDir(t);
  const pki = makePki(dir);
  const { raw, vhdx } = makeDisk(dir, SIZE, 31);
  const tls = await readTlsPair(pki.cert, pki.key);
  const served = await serveImage(t, dir, vhdx, { server: { listen: { host: '127.0.0.1', port: 0 }, tls, handshakeTimeoutMs: 10_000 } });
  const port = (served.server.address as { port: number }).port;
  const uri = `nbds://127.0.0.1:${port}/disk?tls-certificates=${dir}`;
  t.ok(served.server.tls, 'the server requires TLS');

  await t.test('nbdcopy and qemu-img read the export over TLS', async (t) => {
    const out = join(dir, 'copy.raw');
    await runAsync(requireTool('nbdcopy'), [uri, out]);
    t.equal(run(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'raw', out, raw]).trim(), 'Images are identical.', 'nbdcopy over nbds:// copies the disk exactly');
    const info = await runAsync(requireTool('nbdinfo'), ['--json', uri]);
    t.equal(JSON.parse(info).exports[0]['export-size'], SIZE, 'nbdinfo over TLS sees the size');
    const cmp = await runAsync(requireTool('qemu-img'), ['compare', '--object', `tls-creds-x509,dir=${dir},endpoint=client,id=tls0`, '--image-opts',
      `driver=nbd,host=127.0.0.1,port=${port},export=disk,tls-creds=tls0`, `driver=raw,file.filename=${raw}`]);
    t.match(cmp, /Images are identical/, 'qemu-img compare over TLS (tls-creds-x509): identical');
  });

  await t.test('plain clients are refused with NBD_REP_ERR_TLS_REQD; the server goes on', async (t) => {
    await t.rejects(NbdClient.connect({ target: { host: '127.0.0.1', port }, exportName: 'disk' }), { code: 'SV_ERR_NBD_OPTION_REFUSED', details: { reply: 'NBD_REP_ERR_TLS_REQD' } }, 'our plain client is refused');
    await t.rejects(runAsync(requireTool('nbdinfo'), [`nbd://127.0.0.1:${port}/disk`]), 'nbdinfo without TLS fails');
    const s = await handshakeStart({ host: '127.0.0.1', port });
    for (const option of [OPT.LIST, OPT.STRUCTURED_REPLY, OPT.GO, OPT.INFO]) {
      s.write(encodeOption(option, option === OPT.GO || option === OPT.INFO ? Buffer.alloc(6) : undefined));
      t.equal((await optionReply(s)).type, REP.ERR_TLS_REQD, `option ${option} before TLS: NBD_REP_ERR_TLS_REQD`);
    }
    s.write(encodeOption(OPT.STARTTLS, Buffer.from('x')));
    t.equal((await optionReply(s)).type, REP.ERR_INVALID, 'STARTTLS with data: NBD_REP_ERR_INVALID');
    s.write(encodeOption(OPT.EXPORT_NAME, Buffer.from('disk')));
    await closed(s);
    t.pass('EXPORT_NAME before TLS: the server hangs up');
    await runAsync(requireTool('nbdinfo'), ['--size', uri]);
    t.pass('a TLS client is still served');
  });

  await t.test('garbage instead of a ClientHello drops that client only; STARTTLS twice is an error reply', async (t) => {
    const bad = await handshakeStart({ host: '127.0.0.1', port });
    bad.write(encodeOption(OPT.STARTTLS));
    t.equal((await optionReply(bad)).type, REP.ACK, 'STARTTLS: NBD_REP_ACK');
    bad.write(Buffer.alloc(512, 0x47));
    await closed(bad);
    t.pass('the server dropped the client that sent garbage');

    const s = await handshakeStart({ host: '127.0.0.1', port });
    s.write(encodeOption(OPT.STARTTLS));
    t.equal((await optionReply(s)).type, REP.ACK);
    const secure = tlsConnect({ socket: s, ca: readFileSync(pki.ca), servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    secure.write(encodeOption(OPT.STARTTLS));
    t.equal((await optionReply(secure)).type, REP.ERR_INVALID, 'STARTTLS after TLS: NBD_REP_ERR_INVALID');
    secure.write(encodeOption(OPT.STRUCTURED_REPLY));
    t.equal((await optionReply(secure)).type, REP.ACK, 'haggling goes on over TLS');
    secure.write(encodeOption(OPT.ABORT));
    t.equal((await optionReply(secure)).type, REP.ACK, 'ABORT over TLS acknowledged');
    secure.destroy();

    const out = join(dir, 'copy2.raw');
    await runAsync(requireTool('nbdcopy'), [uri, out]);
    t.equal(run(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'raw', out, raw]).trim(), 'Images are identical.', 'served correctly afterwards');
    for (let i = 0; i < 200 && served.server.connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.equal(served.server.connections, 0, 'no connection left open');
  });

  await t.test('unusable certificate files get SV_ERR_NBD_TLS_CERT', async (t) => {
    await t.rejects(readTlsPair(join(dir, 'missing.pem'), pki.key), { code: 'SV_ERR_NBD_TLS_CERT' }, 'unreadable');
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate\n');
    await t.rejects(readTlsPair(join(dir, 'junk.pem'), pki.key), { code: 'SV_ERR_NBD_TLS_CERT' }, 'not PEM');
    await t.rejects(readTlsPair(pki.cert, join(dir, 'ca-key.pem')), { code: 'SV_ERR_NBD_TLS_CERT' }, 'key of another certificate');
    await t.rejects(NbdServer.listen({ listen: { host: '127.0.0.1', port: 0 }, exports: new ExportTable(), tls: { cert: 'junk', key: 'junk' } }), { code: 'SV_ERR_NBD_TLS_CERT' }, 'server refuses a bad pair');
  });
});

t.test('shadowvault export --tls-cert/--tls-key', async (t) => {
  t.teardown(() => closePool());
  const dir = tempDir(t);
  const pki = makePki(dir);
  const { raw, vhdx } = makeDisk(dir, SIZE, 32);
  const store = join(dir, 'store');
  const point = await backup({ store, source: 'vm1', disks: fileRefs([vhdx]) });

  const half = await cliInProcess(['export', 'vm1', '--store', store, '--tls-cert', pki.cert]);
  t.match(half.stderr, /SV_ERR_CLI_BAD_USAGE/, '--tls-cert without --tls-key: usage error');
  const junk = await cliInProcess(['export', 'vm1', '--store', store, '--tls-cert', pki.ca.replace('ca-cert', 'ext.cnf').replace('.pem', ''), '--tls-key', pki.key]);
  t.match(junk.stderr, /SV_ERR_NBD_TLS_CERT/, 'a certificate file that is not PEM: coded error');

  const started = await startExporter(t, [`vm1@${point.id}`, '--store', store, '--listen', '127.0.0.1:0', '--tls-cert', pki.cert, '--tls-key', pki.key]);
  const { child: exporter, exited } = started;
  const err = (): string => started.stderr();
  const serving = started.serving as { event: string; uri: string; tls: boolean };
  t.equal(serving.event, 'serving', `exporter serving (${err()})`);
  t.ok(serving.tls && serving.uri.startsWith('nbds://127.0.0.1:'), `TLS export, URI ${serving.uri}`);
  const copy = join(dir, 'cli-copy.raw');
  await runAsync(requireTool('nbdcopy'), [`${serving.uri}?tls-certificates=${dir}`, copy]);
  t.equal(run(requireTool('qemu-img'), ['compare', '-f', 'raw', '-F', 'raw', copy, raw]).trim(), 'Images are identical.', 'nbdcopy over TLS reads the recovery point');
  exporter.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 0, `exporter stopped cleanly (${err()})`);
});
