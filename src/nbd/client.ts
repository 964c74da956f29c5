/**
 * An NBD client for reading QEMU point-in-time views: data with READ, allocation and dirty bitmaps with
 * BLOCK_STATUS over `base:allocation` / `qemu:dirty-bitmap:NAME` / `qemu:allocation-depth`.
 *
 * Transmission: every request gets a fresh 64-bit cookie and an entry in `#pending`; one reply loop reads
 * replies in whatever order the server sends them and routes each chunk by cookie to the request's
 * assembler (reply.ts). At most `maxInFlight` requests are outstanding; more wait for a slot.
 *
 * Failure model:
 *   - an error reply to a request (simple error, error chunk) fails that request with
 *     SV_ERR_NBD_REQUEST_FAILED; the connection stays usable;
 *   - anything malformed (bad magic, unknown cookie, oversize length, bad chunk) closes the connection and
 *     fails every pending and queued request with that SV_ERR_NBD_PROTOCOL / SV_ERR_NBD_TOO_LARGE error;
 *   - a request unanswered after `requestTimeoutMs` means the server hangs: the connection is closed and
 *     all pending requests fail with SV_ERR_NBD_TIMEOUT; the handshake is bounded by `handshakeTimeoutMs`;
 *   - the peer hanging up fails everything with SV_ERR_NBD_CLOSED.
 * Memory: each pending READ holds its result buffer (≤ maxRequestBytes); a chunk payload is buffered only
 * after its length passed the request's cap (see codec-transmission.ts `chunkPayloadLimit`).
 */
import { SvError, hasCode } from '../errors/index.js';
import { decodeChunkHeader, decodeOffsetDataHeader, decodeReplyMagic, decodeSimpleReply, encodeOption, encodeRequest, isDone, replyHeaderSize, violation } from './codec.js';
import { clientHandshake, type BlockSizes, type Negotiated } from './handshake.js';
import { CMD, LIMIT, OPT, REPLY_TYPE, SIZE, TX_FLAG } from './protocol.js';
import { BlockStatusReply, ReadReply, type NbdExtent, type ReplyAssembler } from './reply.js';
import { Slots } from './slots.js';
import { Wire, type Target } from './wire.js';

export type { NbdExtent } from './reply.js';

export interface NbdConnectOptions {
  /** Unix socket path, or `host` + `port` for TCP. */
  target: Target;
  exportName?: string;
  /** Metadata contexts to select (each must be granted, or connect fails with SV_ERR_NBD_NO_META_CONTEXT). */
  metaContexts?: readonly string[];
  handshakeTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxInFlight?: number;
  /** Largest READ request sent (further capped by the server's maximum payload). */
  maxRequestBytes?: number;
}

interface Pending {
  reply: ReplyAssembler<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: SvError) => void;
  timer: NodeJS.Timeout;
}

export class NbdClient {
  #wire: Wire;
  #info: Negotiated;
  #pending = new Map<bigint, Pending>();
  #nextCookie = 1n;
  #slots: Slots;
  #requestTimeoutMs: number;
  #maxRequest: number;
  #closing = false;
  #loop: Promise<void>;

  private constructor(wire: Wire, info: Negotiated, opts: NbdConnectOptions) {
    this.#wire = wire;
    this.#info = info;
    this.#slots = new Slots(opts.maxInFlight ?? 64);
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    const serverMax = info.blockSizes.maximum >= 0xffffffff ? LIMIT.PAYLOAD : Math.min(info.blockSizes.maximum, LIMIT.PAYLOAD_CEILING);
    const wanted = Math.min(opts.maxRequestBytes ?? LIMIT.PAYLOAD, serverMax);
    this.#maxRequest = Math.max(info.blockSizes.minimum, wanted - (wanted % info.blockSizes.minimum));
    this.#loop = this.#replyLoop();
  }

  /** Connect, negotiate and enter transmission. */
  static async connect(opts: NbdConnectOptions): Promise<NbdClient> {
    for (const key of ['handshakeTimeoutMs', 'requestTimeoutMs', 'maxInFlight', 'maxRequestBytes'] as const) {
      const v = opts[key];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) {
        throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `NbdConnectOptions.${key} must be a positive integer, got ${v}`, { option: key, value: v });
      }
    }
    const timeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    const wire = await Wire.open(opts.target, timeoutMs);
    const timer = setTimeout(() => {
      wire.fail(new SvError('SV_ERR_NBD_TIMEOUT', `NBD handshake with ${wire.target} did not complete in ${timeoutMs} ms`, { target: wire.target, timeoutMs }));
    }, timeoutMs);
    try {
      const info = await clientHandshake(wire, opts.exportName ?? '', opts.metaContexts ?? []);
      return new NbdClient(wire, info, opts);
    } catch (err) {
      const e = err instanceof SvError ? err : new SvError('SV_ERR_NBD_PROTOCOL', `NBD handshake with ${wire.target}: ${String(err)}`, {}, { cause: err });
      if (!wire.failure && !hasCode(e, 'SV_ERR_NBD_PROTOCOL', 'SV_ERR_NBD_TOO_LARGE')) {
        wire.write(encodeOption(OPT.ABORT)); // soft disconnect when the server did nothing wrong
        await wire.end(Math.min(1000, timeoutMs));
      }
      wire.fail(e);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  get size(): number {
    return this.#info.size;
  }
  get transmissionFlags(): number {
    return this.#info.transmissionFlags;
  }
  get readOnly(): boolean {
    return (this.#info.transmissionFlags & TX_FLAG.READ_ONLY) !== 0;
  }
  get blockSizes(): BlockSizes {
    return { ...this.#info.blockSizes };
  }
  get structuredReplies(): boolean {
    return this.#info.structuredReplies;
  }
  /** Names of the selected metadata contexts. */
  get contexts(): string[] {
    return [...this.#info.contexts.keys()];
  }
  /** Largest length one READ request carries; `read()` splits longer reads. */
  get maxRequestBytes(): number {
    return this.#maxRequest;
  }
  /** Requests in flight now. */
  get inFlight(): number {
    return this.#pending.size;
  }
  /** The error that ended the connection, if it ended. */
  get failure(): SvError | null {
    return this.#wire.failure;
  }

  /** `length` bytes at `offset`, split into requests of at most `maxRequestBytes`, all in flight at once. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.#checkRange('read', offset, length, Number.MAX_SAFE_INTEGER);
    return this.readInto(offset, Buffer.allocUnsafe(length)); // every byte is data or a zero-filled hole when it resolves
  }

  /** Fill `out` with the bytes at `offset` (a reused buffer saves an allocation per read); resolves to `out`. */
  async readInto(offset: number, out: Buffer): Promise<Buffer> {
    const length = out.length;
    this.#checkRange('read', offset, length, Number.MAX_SAFE_INTEGER);
    const parts: Promise<unknown>[] = [];
    for (let at = 0; at < length; at += this.#maxRequest) {
      const target = out.subarray(at, Math.min(length, at + this.#maxRequest));
      parts.push(this.#submit(new ReadReply(offset + at, target)));
    }
    await Promise.all(parts);
    return out;
  }

  /** Extents of `context` from `offset`: consecutive, non-empty, covering at most `length` bytes (at least one). */
  async blockStatus(offset: number, length: number, context: string): Promise<NbdExtent[]> {
    const id = this.#info.contexts.get(context);
    if (id === undefined) {
      throw new SvError('SV_ERR_NBD_NO_META_CONTEXT', `NBD context ${context} was not negotiated (have: ${this.contexts.join(', ') || 'none'})`, { context, selected: this.contexts });
    }
    this.#checkRange('blockStatus', offset, length, 0xffffffff);
    const reply = new BlockStatusReply(offset, length, new Set(this.#info.contexts.values()), id);
    return (await this.#submit(reply)) as NbdExtent[];
  }

  /** Wait for requests in flight, send NBD_CMD_DISC and close the socket. */
  async close(): Promise<void> {
    if (this.#closing) return this.#loop;
    this.#closing = true;
    await this.#slots.drain();
    if (!this.#wire.failure) {
      this.#wire.write(encodeRequest({ flags: 0, type: CMD.DISC, cookie: this.#nextCookie++, offset: 0, length: 0 }));
      await this.#wire.end(2000);
    }
    this.#wire.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD connection to ${this.#wire.target} was closed`, { target: this.#wire.target }));
    await this.#loop;
  }

  #checkRange(what: string, offset: number, length: number, maxLength: number): void {
    const { minimum } = this.#info.blockSizes;
    const size = this.#info.size;
    const bad = (why: string): SvError =>
      new SvError('SV_ERR_NBD_BAD_REQUEST', `NBD ${what} [${offset}, +${length}) ${why}`, { offset, length, size, minimumBlock: minimum });
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) throw bad('needs a non-negative offset and a positive length');
    if (length > maxLength) throw bad(`is longer than ${maxLength} bytes`);
    if (offset + length > size) throw bad(`reaches past the export end ${size}`);
    if (offset % minimum !== 0 || (length % minimum !== 0 && offset + length !== size)) throw bad(`is not aligned to the minimum block size ${minimum}`);
    if (this.#closing || this.#wire.failure) throw this.#wire.failure ?? new SvError('SV_ERR_NBD_CLOSED', `NBD connection to ${this.#wire.target} is closing`, {});
  }

  async #submit(reply: ReplyAssembler<unknown>): Promise<unknown> {
    await this.#slots.acquire(() => this.#wire.failure);
    const failure = this.#wire.failure;
    if (failure) {
      this.#slots.release();
      throw failure;
    }
    const cookie = this.#nextCookie++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wire.fail(
          new SvError('SV_ERR_NBD_TIMEOUT', `NBD server ${this.#wire.target} did not answer a request in ${this.#requestTimeoutMs} ms; connection closed`, {
            target: this.#wire.target,
            timeoutMs: this.#requestTimeoutMs,
            offset: reply.offset,
            length: reply.length,
          }),
        );
      }, this.#requestTimeoutMs);
      this.#pending.set(cookie, { reply, resolve, reject, timer });
      this.#wire.write(encodeRequest({ flags: 0, type: reply.command, cookie, offset: reply.offset, length: reply.length }));
    });
  }

  #settle(cookie: bigint, outcome: { value: unknown } | { error: SvError }): void {
    const p = this.#pending.get(cookie);
    if (!p) return;
    this.#pending.delete(cookie);
    clearTimeout(p.timer);
    this.#slots.release();
    if ('error' in outcome) p.reject(outcome.error);
    else p.resolve(outcome.value);
  }

  #complete(cookie: bigint, reply: ReplyAssembler<unknown>): void {
    let value: unknown;
    try {
      value = reply.finish();
    } catch (err) {
      // A violation in the reply as a whole (READ not covered) ends the connection, an error reply only this request.
      if (err instanceof SvError && hasCode(err, 'SV_ERR_NBD_REQUEST_FAILED')) return this.#settle(cookie, { error: err });
      throw err;
    }
    this.#settle(cookie, { value });
  }

  async #replyLoop(): Promise<void> {
    try {
      for (;;) {
        const magic = await this.#wire.read(SIZE.REPLY_MAGIC);
        const kind = decodeReplyMagic(magic);
        const header = Buffer.concat([magic, await this.#wire.read(replyHeaderSize(kind) - SIZE.REPLY_MAGIC)]);
        if (kind === 'simple') await this.#onSimple(header);
        else await this.#onChunk(header);
      }
    } catch (err) {
      const e = err instanceof SvError ? err : new SvError('SV_ERR_NBD_PROTOCOL', `NBD reply from ${this.#wire.target}: ${String(err)}`, {}, { cause: err });
      this.#wire.fail(e);
      const failure = this.#wire.failure ?? e;
      for (const cookie of [...this.#pending.keys()]) this.#settle(cookie, { error: failure });
      this.#slots.fail();
    }
  }

  #lookup(cookie: bigint): Pending {
    const p = this.#pending.get(cookie);
    if (!p) throw violation('reply', 'cookie', 'the cookie of a request in flight', cookie);
    return p;
  }

  async #onSimple(header: Buffer): Promise<void> {
    const { error, cookie } = decodeSimpleReply(header);
    const { reply } = this.#lookup(cookie);
    if (error === 0 && reply instanceof ReadReply) {
      if (this.#info.structuredReplies) throw violation('simple reply', 'use', 'no simple reply to READ once structured replies are on', 'one');
      await this.#wire.readInto(reply.target);
      reply.simpleData();
    } else if (error === 0 && reply.command === CMD.BLOCK_STATUS) {
      throw violation('simple reply', 'use', 'a structured reply to BLOCK_STATUS', 'a simple reply');
    }
    reply.simple(error);
    this.#complete(cookie, reply);
  }

  async #onChunk(raw: Buffer): Promise<void> {
    if (!this.#info.structuredReplies) throw violation('structured reply chunk', 'use', 'simple replies only (not negotiated)', 'a chunk');
    const cookie = raw.readBigUInt64BE(8);
    const { reply } = this.#lookup(cookie);
    const h = decodeChunkHeader(raw, (type) => reply.payloadLimit(type));
    if (h.type === REPLY_TYPE.OFFSET_DATA && reply instanceof ReadReply) {
      // Stream the data into the caller's buffer: one copy, nothing accumulated.
      const { offset, length } = decodeOffsetDataHeader(await this.#wire.read(SIZE.OFFSET_DATA_HEADER), h.length);
      await this.#wire.readInto(reply.dataTarget(offset, length));
    } else {
      reply.chunk(h, await this.#wire.read(h.length));
    }
    if (isDone(h)) this.#complete(cookie, reply);
  }
}
