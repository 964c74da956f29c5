/**
 * Seeded fuzz of every NBD codec decoder: random buffers and mutated valid encodings (bytes flipped,
 * u32 fields set to 0 / 1 / 2^31 / 2^32-1, cut short, extended). Each decode either returns or throws an
 * SvError with an SV_ERR_NBD_* code; header decoders never return a length above their cap.
 */
import t from 'tap';
import { prng } from '../../bench/data.js';
import { SvError } from '../../src/errors/index.js';
import * as codec from '../../src/nbd/codec.js';
import { INFO, LIMIT, OPT, REP, REPLY_FLAG, REPLY_TYPE } from '../../src/nbd/protocol.js';

const ITERATIONS = 400; // per decoder

type Decoder = (b: Buffer) => unknown;

const samples: [string, Buffer[], Decoder][] = [
  ['greeting', [codec.encodeGreeting(3)], codec.decodeGreeting],
  ['client flags', [codec.encodeClientFlags(3)], codec.decodeClientFlags],
  ['option header', [codec.encodeOption(OPT.GO, Buffer.alloc(12)).subarray(0, 16)], codec.decodeOptionHeader],
  ['GO data', [codec.encodeGoData({ name: 'disk', infos: [INFO.BLOCK_SIZE, INFO.NAME] })], codec.decodeGoData],
  ['meta context query', [codec.encodeMetaContextQuery({ name: 'disk', queries: ['base:allocation', 'qemu:dirty-bitmap:b0'] })], codec.decodeMetaContextQuery],
  ['option reply header', [codec.encodeOptionReply(OPT.GO, REP.INFO, Buffer.alloc(12)).subarray(0, 20)], codec.decodeOptionReplyHeader],
  [
    'info',
    [
      codec.encodeInfo({ type: 'export', size: 1 << 30, flags: 3 }),
      codec.encodeInfo({ type: 'block-size', minimum: 512, preferred: 4096, maximum: 1 << 25 }),
      codec.encodeInfo({ type: 'name', name: 'disk' }),
    ],
    codec.decodeInfo,
  ],
  ['meta context reply', [codec.encodeMetaContextReply({ id: 7, name: 'base:allocation' })], codec.decodeMetaContextReply],
  ['server reply', [codec.encodeServerReply({ name: 'disk', description: 'a disk' })], codec.decodeServerReply],
  ['error text', [Buffer.from('no such export')], codec.decodeErrorText],
  ['export name reply', [codec.encodeExportNameReply(1 << 20, 1, true)], codec.decodeExportNameReply],
  ['request', [codec.encodeRequest({ flags: 0, type: 0, cookie: 9n, offset: 4096, length: 512 })], codec.decodeRequest],
  ['reply magic', [codec.encodeSimpleReply({ error: 0, cookie: 1n }).subarray(0, 4), codec.encodeChunk(1, 0, 1n).subarray(0, 4)], codec.decodeReplyMagic],
  ['simple reply', [codec.encodeSimpleReply({ error: 5, cookie: 1n })], codec.decodeSimpleReply],
  [
    'chunk header',
    [codec.encodeChunk(REPLY_FLAG.DONE, REPLY_TYPE.NONE, 3n), codec.encodeChunk(0, REPLY_TYPE.OFFSET_DATA, 3n, Buffer.alloc(64)).subarray(0, 20)],
    (b) => {
      const h = codec.decodeChunkHeader(b, (type) => codec.chunkPayloadLimit(type, 65536));
      if (h.length > codec.chunkPayloadLimit(h.type, 65536)) throw new Error(`length ${h.length} above its cap`);
      return h;
    },
  ],
  ['offset data', [codec.encodeOffsetData(4096, Buffer.alloc(16, 1))], codec.decodeOffsetData],
  ['offset data header', [codec.encodeOffsetData(4096, Buffer.alloc(16, 1)).subarray(0, 8)], (b) => codec.decodeOffsetDataHeader(b.subarray(0, 8), b.length + 1)],
  ['offset hole', [codec.encodeOffsetHole(4096, 512)], codec.decodeOffsetHole],
  ['block status', [codec.encodeBlockStatus(1, [{ length: 4096, flags: 3 }, { length: 512, flags: 0 }])], codec.decodeBlockStatus],
  ['error chunk', [codec.encodeErrorChunk({ error: 5, message: 'boom' })], (b) => codec.decodeErrorChunk(REPLY_TYPE.ERROR, b)],
  ['error offset chunk', [codec.encodeErrorChunk({ error: 5, message: 'boom', offset: 512 })], (b) => codec.decodeErrorChunk(REPLY_TYPE.ERROR_OFFSET, b)],
];

const SPECIAL = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, LIMIT.STRING + 1];

function mutate(orig: Buffer, rand: () => number): Buffer {
  let b = Buffer.from(orig);
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.15 && b.length > 0) b = b.subarray(0, Math.floor(rand() * b.length));
    else if (r < 0.25) b = Buffer.concat([b, Buffer.alloc(1 + Math.floor(rand() * 16), Math.floor(rand() * 256))]);
    else if (r < 0.6 && b.length >= 4) b.writeUInt32BE(SPECIAL[Math.floor(rand() * SPECIAL.length)]!, Math.floor(rand() * (b.length - 3)));
    else if (b.length > 0) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
  }
  return b;
}

for (const [name, valid, decode] of samples) {
  t.test(`fuzz ${name}: decoded or a coded NBD error`, (t) => {
    const rand = prng(0x4e4244 + name.length * 131 + name.charCodeAt(0));
    for (const v of valid) t.doesNotThrow(() => decode(v), 'the valid sample decodes');
    const seen = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const input = rand() < 0.2 ? Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256))) : mutate(valid[i % valid.length]!, rand);
      try {
        decode(input);
        seen.set('ok', (seen.get('ok') ?? 0) + 1);
      } catch (err) {
        if (!(err instanceof SvError) || !err.code.startsWith('SV_ERR_NBD_')) {
          t.fail(`input ${input.toString('hex')} threw ${String(err)}`);
          break;
        }
        seen.set(err.code, (seen.get(err.code) ?? 0) + 1);
      }
    }
    t.pass(`outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
    t.end();
  });
}
