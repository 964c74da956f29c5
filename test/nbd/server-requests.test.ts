/**
 * Bad requests get NBD errors and the connection goes on; a broken connection does not disturb others;
 * a client that pipelines far more than it reads is held to its byte budget; options the server does not
 * implement get NBD_REP_ERR_UNSUP and the haggling goes on (LIST, INFO, then GO), and a client that did not ask
 * for structured replies gets simple ones. Each case sends exactly what
 * a hostile or buggy client would, through RawClient (or raw-options.ts for the handshake).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { encodeGoData, encodeOption, encodeRequest } from '../../src/nbd/codec.js';
import { CMD, CMD_FLAG, CONTEXT, INFO, MAGIC, NBD_ERRNO, OPT, REP } from '../../src/nbd/protocol.js';
import { NbdClient } from '../../src/nbd/client.js';
import { tempDir } from '../helpers/env.js';
import { RawClient } from './raw-client.js';
import { handshakeStart, optionReply, readN } from './raw-options.js';
import { makeDisk, serveImage } from './serve-image.js';

const SIZE = 32 << 20;
const MiB = 1 << 20;

t.test('bad requests: NBD errors, the connection stays usable, other clients are served', async (t) => {
  const dir = tempDir(t);
  const { vhdx } = makeDisk(dir, SIZE, 99);
  const served = await serveImage(t, dir, vhdx);
  const good = await NbdClient.connect({ target: { path: served.sock }, exportName: 'disk' });
  t.teardown(() => good.close());
  const reference = await good.read(0, 4 * MiB);

  // Strict client: asked for NBD_INFO_BLOCK_SIZE (the real handshake does), structured, base:allocation.
  const c = await RawClient.connect(served.sock, 'disk', [CONTEXT.BASE_ALLOCATION]);
  t.equal(c.info.blockSizes.minimum, 512, 'minimum block size 512');
  const cases: [string, () => bigint, number][] = [
    ['read past the end', () => c.send(CMD.READ, SIZE - 512, 1024), NBD_ERRNO.EINVAL],
    ['read at an offset beyond the end', () => c.send(CMD.READ, 2 ** 52, 512), NBD_ERRNO.EINVAL],
    ['read above 32 MiB', () => c.send(CMD.READ, 0, 64 * MiB), NBD_ERRNO.EOVERFLOW],
    ['empty read', () => c.send(CMD.READ, 0, 0), NBD_ERRNO.EINVAL],
    ['misaligned read', () => c.send(CMD.READ, 100, 512), NBD_ERRNO.EINVAL],
    ['write to a read-only export', () => c.send(CMD.WRITE, 0, 4096, { data: Buffer.alloc(4096, 1) }), NBD_ERRNO.EPERM],
    ['write above 32 MiB (data read and dropped)', () => c.send(CMD.WRITE, 0, 33 * MiB, { data: Buffer.alloc(33 * MiB, 2) }), NBD_ERRNO.EOVERFLOW],
    ['trim of a read-only export', () => c.send(CMD.TRIM, 0, 4096), NBD_ERRNO.EPERM],
    ['unknown command', () => c.send(99, 0, 512), NBD_ERRNO.EINVAL],
    ['unknown flag', () => c.send(CMD.READ, 0, 512, { flags: 1 << 9 }), NBD_ERRNO.EINVAL],
    ['REQ_ONE on a read', () => c.send(CMD.READ, 0, 512, { flags: CMD_FLAG.REQ_ONE }), NBD_ERRNO.EINVAL],
    ['flush with a length', () => c.send(CMD.FLUSH, 0, 512), NBD_ERRNO.EINVAL],
    ['block status past the end', () => c.send(CMD.BLOCK_STATUS, SIZE, 512), NBD_ERRNO.EINVAL],
  ];
  for (const [what, send, errno] of cases) {
    const cookie = send();
    const r = await c.reply();
    t.equal(r.cookie, cookie, `${what}: reply to its cookie`);
    t.equal(r.error, errno, `${what}: errno ${errno} (${r.message ?? ''})`);
    const ok = c.send(CMD.READ, MiB, MiB);
    const after = await c.reply();
    t.ok(after.cookie === ok && after.error === 0 && after.data?.equals(reference.subarray(MiB, 2 * MiB)), `${what}: the next read on the same connection works`);
  }
  const one = c.send(CMD.BLOCK_STATUS, 0, SIZE, { flags: CMD_FLAG.REQ_ONE });
  const r1 = await c.reply();
  t.ok(r1.cookie === one && r1.extents?.length === 1, 'REQ_ONE: one extent');
  t.equal((await good.read(0, 4 * MiB)).compare(reference), 0, 'the other client was served throughout');

  // No context selected: BLOCK_STATUS is EINVAL. A lenient client (no block-size query) may use any alignment.
  const plain = await RawClient.connect(served.sock, 'disk');
  t.teardown(() => plain.close());
  plain.send(CMD.BLOCK_STATUS, 0, 4096);
  t.equal((await plain.reply()).error, NBD_ERRNO.EINVAL, 'block status without a selected context: EINVAL');

  // A broken request header ends that connection only.
  c.wire.write(Buffer.alloc(28, 0xee));
  await t.rejects(c.reply(), 'bad request magic: the server hangs up');
  t.equal((await good.read(MiB, MiB)).compare(reference.subarray(MiB, 2 * MiB)), 0, 'the other client is still served');
});

t.test('a client that sends without reading is held to its byte budget', async (t) => {
  const dir = tempDir(t);
  const { vhdx } = makeDisk(dir, SIZE, 5);
  const served = await serveImage(t, dir, vhdx);
  const c = await RawClient.connect(served.sock, 'disk');
  const count = 8;
  for (let i = 0; i < count; i++) c.send(CMD.READ, 0, 32 * MiB);
  let peak = 0;
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 25));
    peak = Math.max(peak, served.server.bytesInFlight);
  }
  t.ok(peak > 0 && peak <= 64 * MiB, `bytes in flight stayed within the 64 MiB budget (peak ${peak}) with ${count} × 32 MiB asked`);
  const other = await NbdClient.connect({ target: { path: served.sock }, exportName: 'disk' });
  t.equal((await other.read(0, MiB)).length, MiB, 'another client is served meanwhile');
  await other.close();
  let answered = 0;
  for (let i = 0; i < count; i++) if ((await c.reply()).data?.length === 32 * MiB) answered++;
  t.equal(answered, count, 'every request is answered once the client reads');
  await c.close();
});

t.test('a malformed option header is a hang-up even when the client keeps its end open', async (t) => {
  const dir = tempDir(t);
  const { vhdx } = makeDisk(dir, 4 << 20, 8);
  const served = await serveImage(t, dir, vhdx);
  const { connect } = await import('node:net');
  const s = connect({ path: served.sock });
  s.on('data', () => undefined);
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  s.on('error', () => undefined);
  s.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.alloc(16, 0x41)])); // client flags, then an option with bad magic
  t.ok(await closed, 'the server closed the connection');
  t.equal(served.server.connections, 0, 'no connection slot held');
});

t.test('options the server does not implement: NBD_REP_ERR_UNSUP, and the haggling goes on; simple replies', async (t) => {
  const dir = tempDir(t);
  const { raw, vhdx } = makeDisk(dir, 4 << 20, 9);
  const served = await serveImage(t, dir, vhdx);
  const s = await handshakeStart({ path: served.sock });
  t.teardown(() => s.destroy());
  for (const option of [OPT.LIST_META_CONTEXT + 100, 0x7fff, OPT.STARTTLS]) { // unknown, unknown, TLS on a plain server
    s.write(encodeOption(option));
    t.equal((await optionReply(s)).type, REP.ERR_UNSUP, `option ${option}: NBD_REP_ERR_UNSUP`);
  }
  s.write(encodeOption(OPT.LIST));
  const listed = await optionReply(s);
  t.equal(listed.type, REP.SERVER, 'LIST: a server reply');
  t.match(listed.text, /disk/, 'LIST names the export');
  t.equal((await optionReply(s)).type, REP.ACK, 'LIST ends with ACK');
  for (const option of [OPT.INFO, OPT.GO]) {
    s.write(encodeOption(option, encodeGoData({ name: '', infos: [INFO.BLOCK_SIZE] })));
    let r = await optionReply(s);
    while (r.type === REP.INFO) r = await optionReply(s);
    t.equal(r.type, REP.ACK, `${option === OPT.GO ? 'GO' : 'INFO'} of the default export: INFO replies, then ACK`);
  }
  // No STRUCTURED_REPLY was asked for: a READ gets a simple reply (magic, error 0, cookie, then the data).
  s.write(encodeRequest({ flags: 0, type: CMD.READ, cookie: 7n, offset: MiB, length: 4096 }));
  const reply = await readN(s, 16 + 4096);
  t.equal(reply.readUInt32BE(0), MAGIC.SIMPLE_REPLY, 'a simple reply');
  t.equal(reply.readUInt32BE(4), 0, 'no error');
  t.equal(reply.readBigUInt64BE(8), 7n, 'its cookie');
  t.ok(reply.subarray(16).equals(readFileSync(raw).subarray(MiB, MiB + 4096)), 'the disk\'s bytes');
});
