/**
 * NBD handshake codec, both directions: the server greeting and client flags, options (client → server)
 * with their data (GO/INFO, SET/LIST_META_CONTEXT), option replies (server → client) with their payloads
 * (REP_INFO items, REP_META_CONTEXT, REP_SERVER, error text), and the NBD_OPT_EXPORT_NAME answer.
 * Layouts are in protocol.ts. Decoders take exactly one message (header or payload) and throw
 * SV_ERR_NBD_PROTOCOL / SV_ERR_NBD_TOO_LARGE; header decoders check an announced length against LIMIT
 * before the caller reads (and allocates) the payload.
 */
import { SvError } from '../errors/index.js';
import {
  Builder,
  Cursor,
  asBuffer,
  expectSize,
  readSafeU64,
  stringBytes,
  tooLarge,
  violation,
  writeU64,
} from './codec-base.js';
import { HANDSHAKE_FLAG, INFO, LIMIT, MAGIC, SIZE } from './protocol.js';

// --- greeting and client flags --------------------------------------------------------------------

export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.alloc(SIZE.GREETING);
  b.writeBigUInt64BE(MAGIC.NBD, 0);
  b.writeBigUInt64BE(MAGIC.IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

/** The server greeting; refuses oldstyle servers and servers without fixed newstyle. */
export function decodeGreeting(raw: Uint8Array): { handshakeFlags: number } {
  const b = asBuffer(raw);
  expectSize('greeting', b, SIZE.GREETING);
  const magic = b.readBigUInt64BE(0);
  if (magic !== MAGIC.NBD) throw violation('greeting', 'magic', '0x4e42444d41474943 (NBDMAGIC)', magic);
  const second = b.readBigUInt64BE(8);
  if (second === MAGIC.OLDSTYLE) {
    throw new SvError('SV_ERR_NBD_UNSUPPORTED', 'NBD server uses the oldstyle handshake; only fixed newstyle is supported', {});
  }
  if (second !== MAGIC.IHAVEOPT) throw violation('greeting', 'second magic', '0x49484156454f5054 (IHAVEOPT)', second);
  const handshakeFlags = b.readUInt16BE(16);
  if (!(handshakeFlags & HANDSHAKE_FLAG.FIXED_NEWSTYLE)) {
    throw new SvError('SV_ERR_NBD_UNSUPPORTED', 'NBD server does not offer fixed newstyle negotiation', { handshakeFlags });
  }
  return { handshakeFlags };
}

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.alloc(SIZE.CLIENT_FLAGS);
  b.writeUInt32BE(flags >>> 0);
  return b;
}

export function decodeClientFlags(raw: Uint8Array): number {
  const b = asBuffer(raw);
  expectSize('client flags', b, SIZE.CLIENT_FLAGS);
  return b.readUInt32BE(0);
}

// --- options (client → server) ----------------------------------------------------------------------

export interface OptionHeader {
  option: number;
  length: number;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  if (data.length > LIMIT.OPTION_DATA) throw tooLarge('option', 'data length', LIMIT.OPTION_DATA, data.length);
  const b = Buffer.alloc(SIZE.OPTION_HEADER + data.length);
  b.writeBigUInt64BE(MAGIC.IHAVEOPT, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, SIZE.OPTION_HEADER);
  return b;
}

export function decodeOptionHeader(raw: Uint8Array): OptionHeader {
  const b = asBuffer(raw);
  expectSize('option header', b, SIZE.OPTION_HEADER);
  const magic = b.readBigUInt64BE(0);
  if (magic !== MAGIC.IHAVEOPT) throw violation('option header', 'magic', '0x49484156454f5054 (IHAVEOPT)', magic);
  const length = b.readUInt32BE(12);
  if (length > LIMIT.OPTION_DATA) throw tooLarge('option header', 'data length', LIMIT.OPTION_DATA, length);
  return { option: b.readUInt32BE(8), length };
}

/** Data of NBD_OPT_GO and NBD_OPT_INFO: export name and the NBD_INFO items asked for. */
export interface GoData {
  name: string;
  infos: number[];
}

export function encodeGoData(go: GoData): Buffer {
  const b = new Builder().string32(go.name, 'export name').u16(go.infos.length);
  for (const info of go.infos) b.u16(info);
  return b.build();
}

export function decodeGoData(data: Uint8Array): GoData {
  const c = new Cursor(data, 'NBD_OPT_GO data');
  const name = c.string32('export name');
  const count = c.u16('information request count');
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(c.u16('information request'));
  c.end();
  return { name, infos };
}

/** Data of NBD_OPT_SET_META_CONTEXT and NBD_OPT_LIST_META_CONTEXT. */
export interface MetaContextQuery {
  name: string;
  queries: string[];
}

export function encodeMetaContextQuery(q: MetaContextQuery): Buffer {
  const b = new Builder().string32(q.name, 'export name').u32(q.queries.length);
  for (const query of q.queries) b.string32(query, 'metadata context query');
  return b.build();
}

export function decodeMetaContextQuery(data: Uint8Array): MetaContextQuery {
  const c = new Cursor(data, 'NBD_OPT_*_META_CONTEXT data');
  const name = c.string32('export name');
  const count = c.u32('query count');
  // Each query takes at least 4 bytes: a count beyond that cannot be honest.
  if (count * 4 > c.remaining) throw violation('NBD_OPT_*_META_CONTEXT data', 'query count', `at most ${c.remaining >>> 2}`, count);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(c.string32('query'));
  c.end();
  return { name, queries };
}

// --- option replies (server → client) --------------------------------------------------------------

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(SIZE.OPTION_REPLY_HEADER + data.length);
  b.writeBigUInt64BE(MAGIC.OPTION_REPLY, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, SIZE.OPTION_REPLY_HEADER);
  return b;
}

export function decodeOptionReplyHeader(raw: Uint8Array): OptionReplyHeader {
  const b = asBuffer(raw);
  expectSize('option reply header', b, SIZE.OPTION_REPLY_HEADER);
  const magic = b.readBigUInt64BE(0);
  if (magic !== MAGIC.OPTION_REPLY) throw violation('option reply header', 'magic', '0x3e889045565a9', magic);
  const length = b.readUInt32BE(16);
  if (length > LIMIT.OPTION_REPLY) throw tooLarge('option reply header', 'length', LIMIT.OPTION_REPLY, length);
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length };
}

/** One NBD_REP_INFO item. Unknown types are kept as `other` (clients MUST ignore them). */
export type InfoItem =
  | { type: 'export'; size: number; flags: number }
  | { type: 'name'; name: string }
  | { type: 'description'; description: string }
  | { type: 'block-size'; minimum: number; preferred: number; maximum: number }
  | { type: 'other'; code: number };

export function encodeInfo(item: InfoItem): Buffer {
  switch (item.type) {
    case 'export': {
      const b = Buffer.alloc(SIZE.INFO_EXPORT);
      b.writeUInt16BE(INFO.EXPORT, 0);
      writeU64(b, item.size, 2);
      b.writeUInt16BE(item.flags, 10);
      return b;
    }
    case 'name':
      return new Builder().u16(INFO.NAME).bytes(stringBytes(item.name, 'export name')).build();
    case 'description':
      return new Builder().u16(INFO.DESCRIPTION).bytes(stringBytes(item.description, 'description')).build();
    case 'block-size':
      return new Builder().u16(INFO.BLOCK_SIZE).u32(item.minimum).u32(item.preferred).u32(item.maximum).build();
    case 'other':
      return new Builder().u16(item.code).build();
  }
}

export function decodeInfo(payload: Uint8Array): InfoItem {
  const b = asBuffer(payload);
  const c = new Cursor(b, 'NBD_REP_INFO');
  const code = c.u16('information type');
  switch (code) {
    case INFO.EXPORT:
      expectSize('NBD_INFO_EXPORT', b, SIZE.INFO_EXPORT);
      return { type: 'export', size: readSafeU64(b, 2, 'NBD_INFO_EXPORT', 'export size'), flags: b.readUInt16BE(10) };
    case INFO.NAME:
      return { type: 'name', name: c.rest('name') };
    case INFO.DESCRIPTION:
      return { type: 'description', description: c.rest('description') };
    case INFO.BLOCK_SIZE:
      expectSize('NBD_INFO_BLOCK_SIZE', b, SIZE.INFO_BLOCK_SIZE);
      return { type: 'block-size', minimum: b.readUInt32BE(2), preferred: b.readUInt32BE(6), maximum: b.readUInt32BE(10) };
    default:
      return { type: 'other', code };
  }
}

/** NBD_REP_META_CONTEXT: a selected (or listed) context and its transient id. */
export interface MetaContextReply {
  id: number;
  name: string;
}

export function encodeMetaContextReply(r: MetaContextReply): Buffer {
  return new Builder().u32(r.id).bytes(stringBytes(r.name, 'metadata context name')).build();
}

export function decodeMetaContextReply(payload: Uint8Array): MetaContextReply {
  const c = new Cursor(payload, 'NBD_REP_META_CONTEXT');
  const id = c.u32('context id');
  return { id, name: c.rest('context name') };
}

/** NBD_REP_SERVER: one export of NBD_OPT_LIST. */
export interface ServerReply {
  name: string;
  description: string;
}

export function encodeServerReply(r: ServerReply): Buffer {
  return new Builder().string32(r.name, 'export name').bytes(stringBytes(r.description, 'description')).build();
}

export function decodeServerReply(payload: Uint8Array): ServerReply {
  const c = new Cursor(payload, 'NBD_REP_SERVER');
  const name = c.string32('export name');
  return { name, description: c.rest('description') };
}

/** The optional human-readable text of an error reply (the payload, capped at the string limit). */
export function decodeErrorText(payload: Uint8Array): string {
  const b = asBuffer(payload);
  return b.toString('utf8', 0, Math.min(b.length, LIMIT.STRING));
}

// --- NBD_OPT_EXPORT_NAME answer --------------------------------------------------------------------

export function encodeExportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(SIZE.EXPORT_NAME_REPLY + (noZeroes ? 0 : SIZE.EXPORT_NAME_ZEROES));
  writeU64(b, size, 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

/** The first 10 bytes of the answer (the caller skips the 124 zeroes unless NO_ZEROES was agreed). */
export function decodeExportNameReply(raw: Uint8Array): { size: number; flags: number } {
  const b = asBuffer(raw);
  expectSize('NBD_OPT_EXPORT_NAME reply', b, SIZE.EXPORT_NAME_REPLY);
  return { size: readSafeU64(b, 0, 'NBD_OPT_EXPORT_NAME reply', 'export size'), flags: b.readUInt16BE(8) };
}
