/**
 * NBD codec round trips, both directions: everything the client sends and the server answers encodes
 * and decodes back to itself, with the exact wire sizes of protocol.ts; a few known byte layouts are
 * checked against the spec's field order.
 */
import t from 'tap';
import * as codec from '../../src/nbd/codec.js';
import { CMD, INFO, MAGIC, OPT, REP, REPLY_FLAG, REPLY_TYPE, SIZE } from '../../src/nbd/protocol.js';

t.test('handshake messages round-trip', (t) => {
  t.same(codec.decodeGreeting(codec.encodeGreeting(3)), { handshakeFlags: 3 });
  t.equal(codec.encodeGreeting(1).length, SIZE.GREETING);
  t.equal(codec.decodeClientFlags(codec.encodeClientFlags(3)), 3);
  const opt = codec.encodeOption(OPT.GO, codec.encodeGoData({ name: 'disk', infos: [INFO.BLOCK_SIZE] }));
  t.same(codec.decodeOptionHeader(opt.subarray(0, SIZE.OPTION_HEADER)), { option: OPT.GO, length: opt.length - SIZE.OPTION_HEADER });
  t.same(codec.decodeGoData(opt.subarray(SIZE.OPTION_HEADER)), { name: 'disk', infos: [INFO.BLOCK_SIZE] });
  const q = { name: 'é', queries: ['base:allocation', 'qemu:dirty-bitmap:b0'] };
  t.same(codec.decodeMetaContextQuery(codec.encodeMetaContextQuery(q)), q);
  const rep = codec.encodeOptionReply(OPT.SET_META_CONTEXT, REP.META_CONTEXT, codec.encodeMetaContextReply({ id: 4, name: 'base:allocation' }));
  t.same(codec.decodeOptionReplyHeader(rep.subarray(0, SIZE.OPTION_REPLY_HEADER)), { option: OPT.SET_META_CONTEXT, type: REP.META_CONTEXT, length: 4 + 15 });
  t.same(codec.decodeMetaContextReply(rep.subarray(SIZE.OPTION_REPLY_HEADER)), { id: 4, name: 'base:allocation' });
  t.equal(codec.decodeOptionReplyHeader(codec.encodeOptionReply(OPT.LIST, REP.ERR_UNSUP)).type, REP.ERR_UNSUP);
  for (const item of [
    { type: 'export', size: 2 ** 40, flags: 0x1f },
    { type: 'name', name: 'disk' },
    { type: 'description', description: 'a disk' },
    { type: 'block-size', minimum: 512, preferred: 4096, maximum: 1 << 25 },
  ] as codec.InfoItem[]) {
    t.same(codec.decodeInfo(codec.encodeInfo(item)), item, item.type);
  }
  t.equal(codec.encodeInfo({ type: 'export', size: 1, flags: 1 }).length, SIZE.INFO_EXPORT);
  t.same(codec.decodeServerReply(codec.encodeServerReply({ name: 'a', description: 'b c' })), { name: 'a', description: 'b c' });
  const en = codec.encodeExportNameReply(1 << 20, 3, false);
  t.equal(en.length, SIZE.EXPORT_NAME_REPLY + SIZE.EXPORT_NAME_ZEROES);
  t.same(codec.decodeExportNameReply(en.subarray(0, SIZE.EXPORT_NAME_REPLY)), { size: 1 << 20, flags: 3 });
  t.end();
});

t.test('transmission messages round-trip', (t) => {
  const req = { flags: 8, type: CMD.BLOCK_STATUS, cookie: 0xfedcba9876543210n, offset: 2 ** 45, length: 0xffffffff };
  const wire = codec.encodeRequest(req);
  t.equal(wire.readUInt32BE(0), MAGIC.REQUEST);
  t.same(codec.decodeRequest(wire), req);
  t.same(codec.decodeSimpleReply(codec.encodeSimpleReply({ error: 5, cookie: 7n })), { error: 5, cookie: 7n });
  t.equal(codec.decodeReplyMagic(codec.encodeSimpleReply({ error: 0, cookie: 1n }).subarray(0, 4)), 'simple');
  const chunk = codec.encodeChunk(REPLY_FLAG.DONE, REPLY_TYPE.OFFSET_DATA, 9n, codec.encodeOffsetData(4096, Buffer.from('abc')));
  t.equal(codec.decodeReplyMagic(chunk.subarray(0, 4)), 'structured');
  const h = codec.decodeChunkHeader(chunk.subarray(0, SIZE.STRUCTURED_HEADER), (type) => codec.chunkPayloadLimit(type, 3));
  t.same(h, { flags: REPLY_FLAG.DONE, type: REPLY_TYPE.OFFSET_DATA, cookie: 9n, length: 11 });
  t.ok(codec.isDone(h));
  const body = codec.decodeOffsetData(chunk.subarray(SIZE.STRUCTURED_HEADER));
  t.same([body.offset, body.data.toString()], [4096, 'abc']);
  t.throws(() => codec.decodeChunkHeader(chunk.subarray(0, SIZE.STRUCTURED_HEADER), (type) => codec.chunkPayloadLimit(type, 2)), { code: 'SV_ERR_NBD_TOO_LARGE' });
  t.same(codec.decodeOffsetHole(codec.encodeOffsetHole(512, 4096)), { offset: 512, size: 4096 });
  const d = [{ length: 65536, flags: 3 }, { length: 512, flags: 0 }];
  t.same(codec.decodeBlockStatus(codec.encodeBlockStatus(2, d)), { contextId: 2, descriptors: d });
  t.same(codec.decodeErrorChunk(REPLY_TYPE.ERROR, codec.encodeErrorChunk({ error: 5, message: 'oops' })), { error: 5, message: 'oops' });
  t.same(codec.decodeErrorChunk(REPLY_TYPE.ERROR_OFFSET, codec.encodeErrorChunk({ error: 22, message: '', offset: 1024 })), { error: 22, message: '', offset: 1024 });
  t.ok(codec.isErrorChunk(REPLY_TYPE.ERROR_OFFSET));
  t.throws(() => codec.decodeChunkHeader(codec.encodeChunk(0, REPLY_TYPE.NONE, 1n), () => 0), { code: 'SV_ERR_NBD_PROTOCOL' }, 'NONE without DONE');
  t.throws(() => codec.decodeRequest(codec.encodeRequest({ ...req, offset: 0 }).fill(0xff, 16, 24)), { code: 'SV_ERR_NBD_TOO_LARGE' }, 'a u64 offset beyond 2^53');
  t.end();
});
