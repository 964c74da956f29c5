/**
 * A bare NBD client for server tests: the real client handshake (handshake.ts), then requests written as
 * they are (any command, flags, offsets, lengths, bad ones included) and replies read one message at a
 * time, so tests can send what NbdClient refuses to.
 */
import { decodeBlockStatus, decodeErrorChunk, encodeRequest, isErrorChunk } from '../../src/nbd/codec.js';
import { clientHandshake, type Negotiated } from '../../src/nbd/handshake.js';
import { MAGIC, SIZE } from '../../src/nbd/protocol.js';
import { Wire } from '../../src/nbd/wire.js';

export interface RawReply {
  cookie: bigint;
  /** 0 for success. */
  error: number;
  /** Error chunk message (structured replies). */
  message?: string;
  /** READ data (simple replies: read by the caller's expectation; structured: OFFSET_DATA payload). */
  data?: Buffer;
  /** Descriptors of a BLOCK_STATUS chunk. */
  extents?: { length: number; flags: number }[];
}

export class RawClient {
  readonly wire: Wire;
  readonly info: Negotiated;
  #cookie = 1n;

  private constructor(wire: Wire, info: Negotiated) {
    this.wire = wire;
    this.info = info;
  }

  static async connect(path: string, exportName = '', contexts: string[] = []): Promise<RawClient> {
    const wire = await Wire.open({ path }, 5000);
    return new RawClient(wire, await clientHandshake(wire, exportName, contexts));
  }

  /** Send a request (and WRITE data); returns its cookie. */
  send(type: number, offset: number, length: number, opts: { flags?: number; data?: Buffer } = {}): bigint {
    const cookie = this.#cookie++;
    this.wire.write(encodeRequest({ flags: opts.flags ?? 0, type, cookie, offset, length }));
    if (opts.data) this.wire.write(opts.data);
    return cookie;
  }

  /** The next reply message; for a simple reply to a READ pass `readLength` (the data that follows it). */
  async reply(readLength = 0): Promise<RawReply> {
    const magic = (await this.wire.read(4)).readUInt32BE(0);
    if (magic === MAGIC.SIMPLE_REPLY) {
      const rest = await this.wire.read(SIZE.SIMPLE_REPLY - 4);
      const error = rest.readUInt32BE(0);
      const cookie = rest.readBigUInt64BE(4);
      const data = error === 0 && readLength > 0 ? await this.wire.read(readLength) : undefined;
      return { cookie, error, ...(data ? { data } : {}) };
    }
    if (magic !== MAGIC.STRUCTURED_REPLY) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    const h = await this.wire.read(SIZE.STRUCTURED_HEADER - 4);
    const type = h.readUInt16BE(2);
    const cookie = h.readBigUInt64BE(4);
    const payload = await this.wire.read(h.readUInt32BE(12));
    if (isErrorChunk(type)) {
      const e = decodeErrorChunk(type, payload);
      return { cookie, error: e.error, message: e.message };
    }
    if (type === 1) return { cookie, error: 0, data: payload.subarray(8) };
    if (type === 5) return { cookie, error: 0, extents: decodeBlockStatus(payload).descriptors };
    return { cookie, error: 0 };
  }

  async close(): Promise<void> {
    this.send(2, 0, 0);
    await this.wire.end(2000);
  }
}
