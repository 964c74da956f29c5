/**
 * The NBD client against a hostile server (test/nbd/hostile-server.ts): each malformed handshake or reply
 * ends in the catalogued error the client documents, never a crash, a hang (timeouts bound every wait) or
 * an allocation sized by the peer. Requests in flight when the connection breaks all fail with that error.
 */
import t, { type Test } from 'tap';
import { NbdClient } from '../../src/nbd/client.js';
import {
  encodeChunk,
  encodeErrorChunk,
  encodeExportNameReply,
  encodeGreeting,
  encodeOffsetData,
  encodeOffsetHole,
  encodeOptionReply,
  encodeSimpleReply,
} from '../../src/nbd/codec.js';
import { CMD, CONTEXT, MAGIC, NBD_ERRNO, OPT, REP, REPLY_FLAG, REPLY_TYPE, TX_FLAG } from '../../src/nbd/protocol.js';
import { tempDir } from '../helpers/env.js';
import { hostileServer, type Script } from './hostile-server.js';

const FAST = { handshakeTimeoutMs: 400, requestTimeoutMs: 400 };

async function connectTo(t: Test, script: Script, metaContexts: string[] = []): Promise<NbdClient> {
  const sock = await hostileServer(t, tempDir(t), script);
  const client = await NbdClient.connect({ target: { path: sock }, metaContexts, ...FAST });
  t.teardown(() => client.close());
  return client;
}

function raw(bytes: number[] | Buffer): Buffer {
  return Buffer.from(bytes);
}

const handshakeCases: [string, Script, string][] = [
  ['wrong greeting magic', { greeting: (s) => s.send(raw(Buffer.alloc(18, 0x41))) }, 'SV_ERR_NBD_PROTOCOL'],
  [
    'oldstyle greeting',
    {
      greeting: (s) => {
        const g = encodeGreeting(1);
        g.writeBigUInt64BE(MAGIC.OLDSTYLE, 8);
        s.send(g);
      },
    },
    'SV_ERR_NBD_UNSUPPORTED',
  ],
  ['no fixed newstyle', { greeting: (s) => s.send(encodeGreeting(0)) }, 'SV_ERR_NBD_UNSUPPORTED'],
  ['silent server', { greeting: () => undefined }, 'SV_ERR_NBD_TIMEOUT'],
  ['greeting cut short', { greeting: (s) => (s.send(encodeGreeting(1).subarray(0, 9)), s.socket.end()) }, 'SV_ERR_NBD_CLOSED'],
  [
    'option reply announcing 4 GiB',
    {
      option: (s, h) => {
        const r = encodeOptionReply(h.option, REP.ACK);
        r.writeUInt32BE(0xffffffff, 16);
        s.send(r);
      },
    },
    'SV_ERR_NBD_TOO_LARGE',
  ],
  ['reply for another option', { option: (s) => s.send(encodeOptionReply(OPT.LIST, REP.ACK)) }, 'SV_ERR_NBD_PROTOCOL'],
  ['endless INFO replies', { option: (s, h, d) => (h.option === OPT.GO ? s.send(Buffer.concat(Array.from({ length: 1100 }, () => encodeOptionReply(OPT.GO, REP.INFO, raw([0, 9]))))) : s.defaultOption(h, d)) }, 'SV_ERR_NBD_TOO_LARGE'],
  ['GO acknowledged without NBD_INFO_EXPORT', { option: (s, h, d) => (h.option === OPT.GO ? s.send(encodeOptionReply(OPT.GO, REP.ACK)) : s.defaultOption(h, d)) }, 'SV_ERR_NBD_PROTOCOL'],
  ['unknown export', { option: (s, h, d) => (h.option === OPT.GO ? s.send(encodeOptionReply(OPT.GO, REP.ERR_UNKNOWN, raw(Buffer.from('no such export')))) : s.defaultOption(h, d)) }, 'SV_ERR_NBD_EXPORT_NOT_FOUND'],
  ['GO refused by policy', { option: (s, h, d) => (h.option === OPT.GO ? s.send(encodeOptionReply(OPT.GO, REP.ERR_POLICY)) : s.defaultOption(h, d)) }, 'SV_ERR_NBD_OPTION_REFUSED'],
  ['no contexts selected', { option: (s, h, d) => (h.option === OPT.SET_META_CONTEXT ? s.send(encodeOptionReply(h.option, REP.ACK)) : s.defaultOption(h, d)) }, 'SV_ERR_NBD_NO_META_CONTEXT'],
  ['structured replies unsupported but block status wanted', { option: (s, h, d) => (h.option === OPT.STRUCTURED_REPLY ? s.send(encodeOptionReply(h.option, REP.ERR_UNSUP)) : s.defaultOption(h, d)) }, 'SV_ERR_NBD_UNSUPPORTED'],
];

for (const [name, script, code] of handshakeCases) {
  t.test(`handshake: ${name} → ${code}`, async (t) => {
    const sock = await hostileServer(t, tempDir(t), script);
    await t.rejects(NbdClient.connect({ target: { path: sock }, metaContexts: [CONTEXT.BASE_ALLOCATION], ...FAST }), { code });
  });
}

/** A READ reply script: `answer(send, request)` replaces the default reply. */
function onRead(answer: (send: (b: Buffer) => void, r: { cookie: bigint; offset: number; length: number }) => void): Script {
  return { request: (s, r) => (r.type === CMD.READ ? answer((b) => s.send(b), r) : s.defaultRequest(r)) };
}

const DONE = REPLY_FLAG.DONE;
const transmissionCases: [string, Script, string][] = [
  ['unknown cookie', onRead((send, r) => send(encodeChunk(DONE, REPLY_TYPE.NONE, r.cookie + 1000n))), 'SV_ERR_NBD_PROTOCOL'],
  ['bad reply magic', onRead((send) => send(Buffer.alloc(20, 0x5a))), 'SV_ERR_NBD_PROTOCOL'],
  ['chunk announcing 4 GiB', onRead((send, r) => { const c = encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, r.cookie); c.writeUInt32BE(0xffffffff, 16); send(c); }), 'SV_ERR_NBD_TOO_LARGE'],
  ['data beyond the request', onRead((send, r) => send(encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, r.cookie, encodeOffsetData(r.offset + 1, Buffer.alloc(r.length))))), 'SV_ERR_NBD_PROTOCOL'],
  ['overlapping chunks', onRead((send, r) => { send(encodeChunk(0, REPLY_TYPE.OFFSET_HOLE, r.cookie, encodeOffsetHole(r.offset, r.length))); send(encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, r.cookie, encodeOffsetData(r.offset, Buffer.alloc(1)))); }), 'SV_ERR_NBD_PROTOCOL'],
  ['reply not covering the read', onRead((send, r) => send(encodeChunk(DONE, REPLY_TYPE.OFFSET_HOLE, r.cookie, encodeOffsetHole(r.offset, r.length - 1)))), 'SV_ERR_NBD_PROTOCOL'],
  ['simple reply with data to a structured READ', onRead((send, r) => send(Buffer.concat([encodeSimpleReply({ error: 0, cookie: r.cookie }), Buffer.alloc(r.length)]))), 'SV_ERR_NBD_PROTOCOL'],
  ['block status chunk to a READ', onRead((send, r) => send(encodeChunk(DONE, REPLY_TYPE.BLOCK_STATUS, r.cookie, Buffer.alloc(12, 1)))), 'SV_ERR_NBD_PROTOCOL'],
  ['unknown non-error chunk type', onRead((send, r) => send(encodeChunk(DONE, 77, r.cookie))), 'SV_ERR_NBD_PROTOCOL'],
  ['error chunk whose message overruns it', onRead((send, r) => { const p = encodeErrorChunk({ error: 5, message: 'x' }); p.writeUInt16BE(500, 4); send(encodeChunk(DONE, REPLY_TYPE.ERROR, r.cookie, p)); }), 'SV_ERR_NBD_PROTOCOL'],
  ['truncated chunk, socket left open', onRead((send, r) => send(encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, r.cookie, encodeOffsetData(r.offset, Buffer.alloc(r.length))).subarray(0, 30))), 'SV_ERR_NBD_TIMEOUT'],
  [
    'truncated chunk then hang-up',
    { request: (s, r) => (r.type === CMD.READ ? (s.send(encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, r.cookie, encodeOffsetData(r.offset, Buffer.alloc(r.length))).subarray(0, 30)), s.socket.end()) : s.defaultRequest(r)) },
    'SV_ERR_NBD_CLOSED',
  ],
  ['server stops answering', onRead(() => undefined), 'SV_ERR_NBD_TIMEOUT'],
];

for (const [name, script, code] of transmissionCases) {
  t.test(`transmission: ${name} → ${code}, all pending requests fail, connection closed`, async (t) => {
    const client = await connectTo(t, script, [CONTEXT.BASE_ALLOCATION]);
    const reads = [client.read(0, 4096), client.read(8192, 4096), client.read(65536, 512)];
    for (const r of reads) await t.rejects(r, { code });
    t.match(client.failure, { code });
    await t.rejects(client.blockStatus(0, 4096, CONTEXT.BASE_ALLOCATION), { code }, 'the connection stays failed');
  });
}

t.test('transmission: error replies fail only their request', async (t) => {
  let n = 0;
  const client = await connectTo(
    t,
    onRead((send, r) => {
      n++;
      if (n === 1) send(encodeChunk(DONE, REPLY_TYPE.ERROR_OFFSET, r.cookie, encodeErrorChunk({ error: NBD_ERRNO.EIO, message: 'bad sector', offset: r.offset + 512 })));
      else if (n === 2) send(encodeChunk(DONE, 0x8000 + 99, r.cookie, encodeErrorChunk({ error: NBD_ERRNO.EPERM, message: 'unknown error type' })));
      else send(encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, r.cookie, encodeOffsetData(r.offset, Buffer.alloc(r.length, 7))));
    }),
    [CONTEXT.BASE_ALLOCATION],
  );
  await t.rejects(client.read(0, 4096), { code: 'SV_ERR_NBD_REQUEST_FAILED', details: { errno: 'NBD_EIO', errorOffset: 512, message: 'bad sector' } });
  await t.rejects(client.read(0, 4096), { code: 'SV_ERR_NBD_REQUEST_FAILED', details: { errno: 'NBD_EPERM' } });
  t.ok((await client.read(0, 4096)).every((b) => b === 7));
  t.equal(client.failure, null);
});

t.test('transmission: out-of-order chunks of interleaved replies assemble', async (t) => {
  const held: { cookie: bigint; offset: number; length: number }[] = [];
  const client = await connectTo(
    t,
    {
      request: (s, r) => {
        if (r.type !== CMD.READ) return s.defaultRequest(r);
        held.push(r);
        if (held.length < 2) return;
        const [a, b] = held as [typeof r, typeof r];
        const half = (x: typeof r): number => x.length / 2;
        // Second halves first, replies interleaved, the first reply's DONE as a NONE chunk.
        s.send(encodeChunk(0, REPLY_TYPE.OFFSET_DATA, b.cookie, encodeOffsetData(b.offset + half(b), Buffer.alloc(half(b), 2))));
        s.send(encodeChunk(0, REPLY_TYPE.OFFSET_HOLE, a.cookie, encodeOffsetHole(a.offset + half(a), half(a))));
        s.send(encodeChunk(DONE, REPLY_TYPE.OFFSET_DATA, b.cookie, encodeOffsetData(b.offset, Buffer.alloc(half(b), 1))));
        s.send(encodeChunk(0, REPLY_TYPE.OFFSET_DATA, a.cookie, encodeOffsetData(a.offset, Buffer.alloc(half(a), 9))));
        s.send(encodeChunk(DONE, REPLY_TYPE.NONE, a.cookie));
      },
    },
  );
  const [a, b] = await Promise.all([client.read(0, 8192), client.read(65536, 4096)]);
  t.same(a, Buffer.concat([Buffer.alloc(4096, 9), Buffer.alloc(4096)]));
  t.same(b, Buffer.concat([Buffer.alloc(2048, 1), Buffer.alloc(2048, 2)]));
});

t.test('an old server: no structured replies, no NBD_OPT_GO → simple replies after NBD_OPT_EXPORT_NAME', async (t) => {
  const script: Script = {
    option: (s, h, d) => {
      if (h.option === OPT.STRUCTURED_REPLY || h.option === OPT.GO) return s.send(encodeOptionReply(h.option, REP.ERR_UNSUP));
      if (h.option !== OPT.EXPORT_NAME) return s.defaultOption(h, d);
      s.send(encodeExportNameReply(1 << 20, TX_FLAG.HAS_FLAGS, true));
      return 'transmission';
    },
    request: (s, r) => {
      if (r.type !== CMD.READ) return s.defaultRequest(r);
      if (r.offset === 0) return s.send(encodeSimpleReply({ error: NBD_ERRNO.EIO, cookie: r.cookie }));
      s.send(Buffer.concat([encodeSimpleReply({ error: 0, cookie: r.cookie }), Buffer.alloc(r.length, 0x5c)]));
    },
  };
  const client = await connectTo(t, script);
  t.notOk(client.structuredReplies);
  t.equal(client.size, 1 << 20);
  t.same(client.blockSizes, { minimum: 1, preferred: 4096, maximum: 1 << 25 });
  const [bad, good] = await Promise.allSettled([client.read(0, 4096), client.read(4096, 8192)]);
  t.match(bad, { status: 'rejected', reason: { code: 'SV_ERR_NBD_REQUEST_FAILED', details: { errno: 'NBD_EIO' } } });
  t.ok(good.status === 'fulfilled' && good.value.every((b) => b === 0x5c), 'simple-reply data read');
  await t.rejects(client.blockStatus(0, 512, CONTEXT.BASE_ALLOCATION), { code: 'SV_ERR_NBD_NO_META_CONTEXT' });
});
