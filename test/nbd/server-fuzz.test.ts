/**
 * Seeded fuzz of the NBD server's handshake and request handling. Each session is a valid client stream
 * (client flags; STRUCTURED_REPLY, SET_META_CONTEXT, LIST, INFO, GO; then READ, WRITE with data,
 * BLOCK_STATUS, WRITE_ZEROES, TRIM, FLUSH, DISC) with seeded mutations: bytes flipped, u32 fields set to
 * extreme values (lengths up to 4 GiB), pieces cut short, duplicated or followed by garbage. The stream is
 * sent, our side is half-closed, and whatever comes back is drained. Every session must end with the server
 * closing the connection (no hang); the server never crashes, its bytes in flight never exceed the
 * connection budget, it has no connection left at the end, and a well-behaved client reads correct data
 * after all of it. A second run does the same against a TLS-only server with option sequences around
 * NBD_OPT_STARTTLS (options before it, STARTTLS with data, STARTTLS then plaintext or garbage where the
 * TLS ClientHello belongs, EXPORT_NAME, ABORT); afterwards a TLS client (nbdinfo) is served.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type NetConnectOpts } from 'node:net';
import t from 'tap';
import { prng } from '../../bench/data.js';
import { encodeClientFlags, encodeGoData, encodeMetaContextQuery, encodeOption, encodeRequest } from '../../src/nbd/codec.js';
import { NbdClient } from '../../src/nbd/client.js';
import { CLIENT_FLAG, CMD, CONTEXT, INFO, OPT } from '../../src/nbd/protocol.js';
import { readTlsPair } from '../../src/nbd/tls-files.js';
import { requireTool, runAsync, tempDir } from '../helpers/env.js';
import { makePki } from './pki.js';
import { makeDisk, serveImage } from './serve-image.js';

const SESSIONS = 150;
const TLS_SESSIONS = 100;
const SIZE = 8 << 20;
const SPECIAL = [0, 1, 511, 0x7fffffff, 0x80000000, 0xffffffff];

function validStream(rand: () => number): Buffer[] {
  const parts: Buffer[] = [encodeClientFlags(CLIENT_FLAG.FIXED_NEWSTYLE | CLIENT_FLAG.NO_ZEROES)];
  parts.push(encodeOption(OPT.STRUCTURED_REPLY));
  parts.push(encodeOption(OPT.SET_META_CONTEXT, encodeMetaContextQuery({ name: 'disk', queries: [CONTEXT.BASE_ALLOCATION] })));
  if (rand() < 0.3) parts.push(encodeOption(OPT.LIST));
  if (rand() < 0.3) parts.push(encodeOption(OPT.INFO, encodeGoData({ name: '', infos: [INFO.BLOCK_SIZE, INFO.NAME] })));
  parts.push(encodeOption(OPT.GO, encodeGoData({ name: rand() < 0.5 ? 'disk' : '', infos: [INFO.BLOCK_SIZE] })));
  let cookie = 1n;
  for (let i = 0, n = 1 + Math.floor(rand() * 12); i < n; i++) {
    const type = [CMD.READ, CMD.WRITE, CMD.BLOCK_STATUS, CMD.WRITE_ZEROES, CMD.TRIM, CMD.FLUSH][Math.floor(rand() * 6)]!;
    const length = type === CMD.FLUSH ? 0 : 512 * (1 + Math.floor(rand() * 256));
    const offset = type === CMD.FLUSH ? 0 : 512 * Math.floor(rand() * ((SIZE - length) / 512));
    parts.push(encodeRequest({ flags: 0, type, cookie: cookie++, offset, length }));
    if (type === CMD.WRITE) parts.push(Buffer.alloc(length, Math.floor(rand() * 256)));
  }
  parts.push(encodeRequest({ flags: 0, type: CMD.DISC, cookie: cookie++, offset: 0, length: 0 }));
  return parts;
}

function mutate(parts: Buffer[], rand: () => number): Buffer {
  const out: Buffer[] = [];
  for (const part of parts) {
    if (rand() > 0.1) {
      out.push(part);
      continue;
    }
    const b = Buffer.from(part);
    const pick = rand();
    if (pick < 0.45 && b.length >= 4) b.writeUInt32BE(SPECIAL[Math.floor(rand() * SPECIAL.length)]!, Math.floor(rand() * (b.length - 3)));
    else if (pick < 0.7) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
    else if (pick < 0.8) {
      out.push(b.subarray(0, Math.floor(rand() * b.length)));
      continue;
    } else if (pick < 0.9) out.push(b);
    else out.push(Buffer.alloc(1 + Math.floor(rand() * 64), Math.floor(rand() * 256)));
    out.push(b);
  }
  return Buffer.concat(out);
}

/** Send `stream`, half-close, drain replies; resolves true when the server closed within `ms`. */
function session(target: NetConnectOpts, stream: Buffer, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(target);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, ms);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.once('connect', () => s.end(stream));
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

t.test('mutated client streams: errors or hang-ups, never a crash, a hang or a leak', async (t) => {
  const dir = tempDir(t);
  const { vhdx } = makeDisk(dir, SIZE, 77);
  const digest = (): string => createHash('sha256').update(readFileSync(vhdx)).digest('hex');
  const before = digest();
  const served = await serveImage(t, dir, vhdx, { writable: true, server: { handshakeTimeoutMs: 2000 } });
  const rand = prng(0x5e77e7);
  let peak = 0;
  let hung = 0;
  for (let i = 0; i < SESSIONS; i++) {
    const watch = setInterval(() => (peak = Math.max(peak, served.server.bytesInFlight)), 5);
    const closed = await session({ path: served.sock }, mutate(validStream(rand), rand), 10_000);
    clearInterval(watch);
    if (!closed) hung++;
  }
  t.equal(hung, 0, `every one of ${SESSIONS} sessions was closed by the server`);
  t.ok(peak <= 64 << 20, `bytes in flight peaked at ${peak} (budget 64 MiB)`);
  for (let i = 0; i < 100 && served.server.connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(served.server.connections, 0, 'no connection left open');

  const client = await NbdClient.connect({ target: { path: served.sock }, exportName: 'disk' });
  t.equal((await client.read(0, 4096)).length, 4096, 'a good client is served after the fuzzing');
  await client.close();
  t.equal(digest(), before, 'the exported image is bit-identical (writes went to the overlay)');
});

/** A client stream for a TLS-only server: options around NBD_OPT_STARTTLS, all in plaintext. */
function tlsStream(rand: () => number): Buffer[] {
  const parts: Buffer[] = [encodeClientFlags(CLIENT_FLAG.FIXED_NEWSTYLE | CLIENT_FLAG.NO_ZEROES)];
  const options = [
    (): Buffer => encodeOption(OPT.STARTTLS),
    (): Buffer => encodeOption(OPT.STARTTLS, Buffer.alloc(1 + Math.floor(rand() * 8))),
    (): Buffer => encodeOption(OPT.STRUCTURED_REPLY),
    (): Buffer => encodeOption(OPT.LIST),
    (): Buffer => encodeOption(OPT.GO, encodeGoData({ name: 'disk', infos: [INFO.BLOCK_SIZE] })),
    (): Buffer => encodeOption(OPT.INFO, encodeGoData({ name: '', infos: [] })),
    (): Buffer => encodeOption(OPT.EXPORT_NAME, Buffer.from('disk')),
    (): Buffer => encodeOption(OPT.ABORT),
    (): Buffer => Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]), // a TLS record header and junk
  ];
  for (let i = 0, n = 1 + Math.floor(rand() * 6); i < n; i++) parts.push(options[Math.floor(rand() * options.length)]!());
  return parts;
}

t.test('mutated option streams against a TLS-only server: refusals or hang-ups, never a crash or a hang', async (t) => {
  const dir = tempDir(t);
  const pki = makePki(dir);
  const { vhdx } = makeDisk(dir, 1 << 20, 78);
  const tls = await readTlsPair(pki.cert, pki.key);
  const served = await serveImage(t, dir, vhdx, { server: { listen: { host: '127.0.0.1', port: 0 }, tls, handshakeTimeoutMs: 2000 } });
  const port = (served.server.address as { port: number }).port;
  const rand = prng(0x7157);
  let hung = 0;
  for (let i = 0; i < TLS_SESSIONS; i++) {
    if (!(await session({ host: '127.0.0.1', port }, mutate(tlsStream(rand), rand), 10_000))) hung++;
  }
  t.equal(hung, 0, `every one of ${TLS_SESSIONS} sessions was closed by the server`);
  for (let i = 0; i < 100 && served.server.connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(served.server.connections, 0, 'no connection left open');
  const size = await runAsync(requireTool('nbdinfo'), ['--size', `nbds://127.0.0.1:${port}/disk?tls-certificates=${dir}`]);
  t.equal(Number(size.trim()), 1 << 20, 'a TLS client is served after the fuzzing');
});
