/**
 * NBD transmission codec, both directions: requests (client → server), simple replies and structured reply
 * chunks (server → client) with the chunk payloads NONE, OFFSET_DATA, OFFSET_HOLE, BLOCK_STATUS, ERROR and
 * ERROR_OFFSET. Layouts are in protocol.ts.
 *
 * Reading a reply is two steps so no peer length is trusted: `decodeReplyMagic` on the first 4 bytes says
 * which header follows (16 bytes simple, 20 structured); `decodeChunkHeader` checks the announced payload
 * length against the caller's cap for that chunk type before the payload is read. Payload decoders then
 * check each type's fixed sizes and inner lengths. Cookies are opaque u64 values (bigint).
 */
import { checkedInt, expectAtLeast, expectSize, asBuffer, readSafeU64, tooLarge, violation, writeU64 } from './codec-base.js';
import { LIMIT, MAGIC, REPLY_FLAG, REPLY_TYPE, REPLY_TYPE_ERROR_BIT, SIZE } from './protocol.js';

// --- requests ---------------------------------------------------------------------------------------

export interface Request {
  flags: number;
  type: number;
  cookie: bigint;
  offset: number;
  length: number;
}

/** The 28-byte request header (a WRITE's data follows it on the wire; send it separately). */
export function encodeRequest(r: Request): Buffer {
  const b = Buffer.alloc(SIZE.REQUEST);
  b.writeUInt32BE(MAGIC.REQUEST, 0);
  b.writeUInt16BE(r.flags, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.cookie, 8);
  writeU64(b, r.offset, 16);
  b.writeUInt32BE(checkedInt(r.length, 'request length', 0xffffffff), 24);
  return b;
}

export function decodeRequest(raw: Uint8Array): Request {
  const b = asBuffer(raw);
  expectSize('request', b, SIZE.REQUEST);
  const magic = b.readUInt32BE(0);
  if (magic !== MAGIC.REQUEST) throw violation('request', 'magic', '0x25609513', `0x${magic.toString(16)}`);
  return {
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: b.readBigUInt64BE(8),
    offset: readSafeU64(b, 16, 'request', 'offset'),
    length: b.readUInt32BE(24),
  };
}

// --- replies ----------------------------------------------------------------------------------------

export type ReplyKind = 'simple' | 'structured';

/** Which header a reply starting with these 4 bytes has. */
export function decodeReplyMagic(raw: Uint8Array): ReplyKind {
  const b = asBuffer(raw);
  expectSize('reply magic', b, SIZE.REPLY_MAGIC);
  const magic = b.readUInt32BE(0);
  if (magic === MAGIC.SIMPLE_REPLY) return 'simple';
  if (magic === MAGIC.STRUCTURED_REPLY) return 'structured';
  throw violation('reply', 'magic', '0x67446698 (simple) or 0x668e33ef (structured)', `0x${magic.toString(16)}`);
}

export function replyHeaderSize(kind: ReplyKind): number {
  return kind === 'simple' ? SIZE.SIMPLE_REPLY : SIZE.STRUCTURED_HEADER;
}

export interface SimpleReply {
  error: number;
  cookie: bigint;
}

/** The 16-byte simple reply header (a successful READ's data follows it). */
export function encodeSimpleReply(r: SimpleReply): Buffer {
  const b = Buffer.alloc(SIZE.SIMPLE_REPLY);
  b.writeUInt32BE(MAGIC.SIMPLE_REPLY, 0);
  b.writeUInt32BE(r.error >>> 0, 4);
  b.writeBigUInt64BE(r.cookie, 8);
  return b;
}

export function decodeSimpleReply(raw: Uint8Array): SimpleReply {
  const b = asBuffer(raw);
  expectSize('simple reply', b, SIZE.SIMPLE_REPLY);
  if (b.readUInt32BE(0) !== MAGIC.SIMPLE_REPLY) throw violation('simple reply', 'magic', '0x67446698', b.readUInt32BE(0));
  return { error: b.readUInt32BE(4), cookie: b.readBigUInt64BE(8) };
}

export interface ChunkHeader {
  flags: number;
  type: number;
  cookie: bigint;
  length: number;
}

export function isErrorChunk(type: number): boolean {
  return (type & REPLY_TYPE_ERROR_BIT) !== 0;
}

export function isDone(h: ChunkHeader): boolean {
  return (h.flags & REPLY_FLAG.DONE) !== 0;
}

export function encodeChunk(flags: number, type: number, cookie: bigint, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(SIZE.STRUCTURED_HEADER + payload.length);
  encodeChunkHeader({ flags, type, cookie, length: payload.length }, b);
  payload.copy(b, SIZE.STRUCTURED_HEADER);
  return b;
}

/** The 20-byte chunk header alone, into `into` (or a new buffer): the server sends large payloads after it uncopied. */
export function encodeChunkHeader(h: ChunkHeader, into: Buffer = Buffer.alloc(SIZE.STRUCTURED_HEADER)): Buffer {
  into.writeUInt32BE(MAGIC.STRUCTURED_REPLY, 0);
  into.writeUInt16BE(h.flags, 4);
  into.writeUInt16BE(h.type, 6);
  into.writeBigUInt64BE(h.cookie, 8);
  into.writeUInt32BE(checkedInt(h.length, 'chunk length', 0xffffffff), 16);
  return into;
}

/**
 * A structured chunk header. `maxPayload(type)` is the caller's cap for that chunk type's payload
 * (e.g. the read request size + 8 for OFFSET_DATA); a larger announced length is SV_ERR_NBD_TOO_LARGE.
 */
export function decodeChunkHeader(raw: Uint8Array, maxPayload: (type: number) => number): ChunkHeader {
  const b = asBuffer(raw);
  expectSize('structured reply chunk', b, SIZE.STRUCTURED_HEADER);
  const magic = b.readUInt32BE(0);
  if (magic !== MAGIC.STRUCTURED_REPLY) throw violation('structured reply chunk', 'magic', '0x668e33ef', `0x${magic.toString(16)}`);
  const h = { flags: b.readUInt16BE(4), type: b.readUInt16BE(6), cookie: b.readBigUInt64BE(8), length: b.readUInt32BE(16) };
  const cap = maxPayload(h.type);
  if (h.length > cap) throw tooLarge('structured reply chunk', 'payload length', cap, h.length);
  if (h.type === REPLY_TYPE.NONE && (h.length !== 0 || !isDone(h))) {
    throw violation('NBD_REPLY_TYPE_NONE chunk', 'length/flags', 'length 0 with NBD_REPLY_FLAG_DONE', `length ${h.length}, flags ${h.flags}`);
  }
  return h;
}

/** The payload cap of each chunk type for a reply whose largest data part is `dataLimit` bytes. */
export function chunkPayloadLimit(type: number, dataLimit: number): number {
  switch (type) {
    case REPLY_TYPE.NONE:
      return 0;
    case REPLY_TYPE.OFFSET_DATA:
      return SIZE.OFFSET_DATA_HEADER + dataLimit;
    case REPLY_TYPE.OFFSET_HOLE:
      return SIZE.OFFSET_HOLE;
    case REPLY_TYPE.BLOCK_STATUS:
      return SIZE.BLOCK_STATUS_HEADER + SIZE.BLOCK_DESCRIPTOR * LIMIT.EXTENTS_PER_CHUNK;
    default:
      // Error chunks (known or not): header, a message of at most 4096 bytes, an offset.
      return isErrorChunk(type) ? SIZE.ERROR_HEADER + LIMIT.STRING + SIZE.ERROR_OFFSET_TAIL : 0;
  }
}

// --- chunk payloads ---------------------------------------------------------------------------------

export function encodeOffsetData(offset: number, data: Uint8Array): Buffer {
  const b = Buffer.alloc(SIZE.OFFSET_DATA_HEADER + data.length);
  writeU64(b, offset, 0);
  b.set(data, SIZE.OFFSET_DATA_HEADER);
  return b;
}

/** OFFSET_DATA: the data is a view into `payload` (no copy). */
export function decodeOffsetData(payload: Uint8Array): { offset: number; data: Buffer } {
  const b = asBuffer(payload);
  expectAtLeast('NBD_REPLY_TYPE_OFFSET_DATA', b, SIZE.OFFSET_DATA_HEADER + 1);
  return { offset: readSafeU64(b, 0, 'NBD_REPLY_TYPE_OFFSET_DATA', 'offset'), data: b.subarray(SIZE.OFFSET_DATA_HEADER) };
}

/**
 * OFFSET_DATA read in two steps (the client streams the data into its buffer): the 8-byte offset, given
 * the chunk's payload length; returns the offset and the data length.
 */
export function decodeOffsetDataHeader(head: Uint8Array, payloadLength: number): { offset: number; length: number } {
  const b = asBuffer(head);
  expectSize('NBD_REPLY_TYPE_OFFSET_DATA header', b, SIZE.OFFSET_DATA_HEADER);
  if (payloadLength < SIZE.OFFSET_DATA_HEADER + 1) throw violation('NBD_REPLY_TYPE_OFFSET_DATA', 'length', `at least ${SIZE.OFFSET_DATA_HEADER + 1}`, payloadLength);
  return { offset: readSafeU64(b, 0, 'NBD_REPLY_TYPE_OFFSET_DATA', 'offset'), length: payloadLength - SIZE.OFFSET_DATA_HEADER };
}

export function encodeOffsetHole(offset: number, size: number): Buffer {
  const b = Buffer.alloc(SIZE.OFFSET_HOLE);
  writeU64(b, offset, 0);
  b.writeUInt32BE(checkedInt(size, 'hole size', 0xffffffff), 8);
  return b;
}

export function decodeOffsetHole(payload: Uint8Array): { offset: number; size: number } {
  const b = asBuffer(payload);
  expectSize('NBD_REPLY_TYPE_OFFSET_HOLE', b, SIZE.OFFSET_HOLE);
  const size = b.readUInt32BE(8);
  if (size === 0) throw violation('NBD_REPLY_TYPE_OFFSET_HOLE', 'hole size', 'nonzero', 0);
  return { offset: readSafeU64(b, 0, 'NBD_REPLY_TYPE_OFFSET_HOLE', 'offset'), size };
}

/** One block status descriptor: `length` bytes (nonzero) with the context's `flags`. */
export interface Descriptor {
  length: number;
  flags: number;
}

export function encodeBlockStatus(contextId: number, descriptors: readonly Descriptor[]): Buffer {
  const b = Buffer.alloc(SIZE.BLOCK_STATUS_HEADER + SIZE.BLOCK_DESCRIPTOR * descriptors.length);
  b.writeUInt32BE(contextId, 0);
  descriptors.forEach((d, i) => {
    const at = SIZE.BLOCK_STATUS_HEADER + i * SIZE.BLOCK_DESCRIPTOR;
    b.writeUInt32BE(checkedInt(d.length, 'extent length', 0xffffffff), at);
    b.writeUInt32BE(d.flags >>> 0, at + 4);
  });
  return b;
}

export function decodeBlockStatus(payload: Uint8Array): { contextId: number; descriptors: Descriptor[] } {
  const b = asBuffer(payload);
  const structure = 'NBD_REPLY_TYPE_BLOCK_STATUS';
  const body = b.length - SIZE.BLOCK_STATUS_HEADER;
  if (body < SIZE.BLOCK_DESCRIPTOR || body % SIZE.BLOCK_DESCRIPTOR !== 0) throw violation(structure, 'length', '4 + 8n with n >= 1', b.length);
  const count = body / SIZE.BLOCK_DESCRIPTOR;
  if (count > LIMIT.EXTENTS_PER_CHUNK) throw tooLarge(structure, 'descriptor count', LIMIT.EXTENTS_PER_CHUNK, count);
  const descriptors: Descriptor[] = new Array<Descriptor>(count);
  for (let i = 0; i < count; i++) {
    const at = SIZE.BLOCK_STATUS_HEADER + i * SIZE.BLOCK_DESCRIPTOR;
    const length = b.readUInt32BE(at);
    if (length === 0) throw violation(structure, `descriptor ${i} length`, 'nonzero', 0);
    descriptors[i] = { length, flags: b.readUInt32BE(at + 4) };
  }
  return { contextId: b.readUInt32BE(0), descriptors };
}

/** An error chunk's content; `offset` only for NBD_REPLY_TYPE_ERROR_OFFSET. */
export interface ErrorChunk {
  error: number;
  message: string;
  offset?: number;
}

export function encodeErrorChunk(e: ErrorChunk): Buffer {
  const message = Buffer.from(e.message, 'utf8').subarray(0, LIMIT.STRING);
  const tail = e.offset === undefined ? 0 : SIZE.ERROR_OFFSET_TAIL;
  const b = Buffer.alloc(SIZE.ERROR_HEADER + message.length + tail);
  b.writeUInt32BE(e.error >>> 0, 0);
  b.writeUInt16BE(message.length, 4);
  message.copy(b, SIZE.ERROR_HEADER);
  if (e.offset !== undefined) writeU64(b, e.offset, SIZE.ERROR_HEADER + message.length);
  return b;
}

/**
 * ERROR and ERROR_OFFSET chunks, and unknown error-bit chunks (read as ERROR with trailing fields ignored).
 * The message length must fit the payload; the error value must be nonzero.
 */
export function decodeErrorChunk(type: number, payload: Uint8Array): ErrorChunk {
  const b = asBuffer(payload);
  const structure = type === REPLY_TYPE.ERROR_OFFSET ? 'NBD_REPLY_TYPE_ERROR_OFFSET' : 'error chunk';
  const tail = type === REPLY_TYPE.ERROR_OFFSET ? SIZE.ERROR_OFFSET_TAIL : 0;
  expectAtLeast(structure, b, SIZE.ERROR_HEADER + tail);
  const error = b.readUInt32BE(0);
  if (error === 0) throw violation(structure, 'error', 'nonzero', 0);
  const messageLength = b.readUInt16BE(4);
  const room = b.length - SIZE.ERROR_HEADER - tail;
  if (messageLength > room) throw violation(structure, 'message length', `at most ${room}`, messageLength);
  const message = b.toString('utf8', SIZE.ERROR_HEADER, SIZE.ERROR_HEADER + messageLength);
  if (type !== REPLY_TYPE.ERROR_OFFSET) return { error, message };
  return { error, message, offset: readSafeU64(b, SIZE.ERROR_HEADER + messageLength, structure, 'offset') };
}
