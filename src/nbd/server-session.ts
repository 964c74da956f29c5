/**
 * One client connection of the NBD server in the transmission phase: read requests one after the other,
 * run them concurrently against the export's backend, reply in completion order (the protocol allows
 * it; cookies tell the client which is which).
 *
 * Request checks, in this order, each answered with an NBD error while the connection goes on:
 *   unknown command or flag → EINVAL; READ/WRITE above the 32 MiB payload limit → EOVERFLOW (a WRITE's
 *   data is read and dropped in 1 MiB pieces first, so the stream stays in step); writes to a read-only
 *   export → EPERM; empty or out-of-range requests → EINVAL (ENOSPC for writes past the end); requests not
 *   aligned to the 512-byte minimum → EINVAL, for clients that asked for the block size constraints
 *   (others may use any alignment); BLOCK_STATUS without `base:allocation` → EINVAL. A backend failure →
 *   EIO (ENOSPC) with the message.
 * Only a malformed request header (bad magic) or the peer going away ends the connection; NBD_CMD_DISC
 * ends it after the requests in flight are answered.
 *
 * Memory per connection is bounded by `budgetBytes`: each request takes its payload size (at least 4 KiB)
 * from the budget before its data is read, and gives it back once its reply has been handed to the kernel.
 * A client that sends without reading its replies therefore stalls on its own budget; the socket is not
 * read meanwhile (wire.ts pauses it). BLOCK_STATUS replies hold at most `maxExtents` descriptors.
 */
import { hasCode, isSvError } from '../errors/index.js';
import { decodeRequest, encodeBlockStatus, encodeChunk, encodeChunkHeader, encodeErrorChunk, encodeOffsetData, encodeSimpleReply, type Request } from './codec.js';
import type { NbdBackend } from './backend.js';
import { ALLOCATION_CONTEXT_ID, type Agreed } from './server-handshake.js';
import { CMD, CMD_FLAG, NBD_ERRNO, REPLY_FLAG, REPLY_TYPE, SIZE, STATE } from './protocol.js';
import { Slots } from './slots.js';
import type { Wire } from './wire.js';

/** Smallest share of the budget one request takes (headers, promises, small replies). */
const REQUEST_COST = 4096;
/** WRITE data beyond the payload limit is read and dropped in pieces of this size. */
const DISCARD_PIECE = 1 << 20;

const KNOWN_FLAGS = CMD_FLAG.FUA | CMD_FLAG.NO_HOLE | CMD_FLAG.DF | CMD_FLAG.REQ_ONE | CMD_FLAG.FAST_ZERO;

export interface SessionLimits {
  /** Bytes of requests and replies in flight on this connection. */
  readonly budgetBytes: number;
  /** Descriptors in one BLOCK_STATUS reply. */
  readonly maxExtents: number;
}

/** An NBD error for one request. */
class RequestError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export class Session {
  #wire: Wire;
  #agreed: Agreed;
  #backend: NbdBackend;
  #limits: SessionLimits;
  #budget: Slots;
  #inFlight = new Set<Promise<void>>();

  constructor(wire: Wire, agreed: Agreed, limits: SessionLimits) {
    this.#wire = wire;
    this.#agreed = agreed;
    this.#backend = agreed.entry.backend;
    this.#limits = limits;
    this.#budget = new Slots(limits.budgetBytes);
  }

  /** Bytes of requests and replies in flight now (≤ the budget). */
  get bytesInFlight(): number {
    return this.#budget.inUse;
  }

  /** Serve until NBD_CMD_DISC or the connection ends; resolves when every reply is written. */
  async run(): Promise<void> {
    try {
      for (;;) {
        const req = decodeRequest(await this.#wire.read(SIZE.REQUEST));
        if (req.type === CMD.DISC) break;
        const cost = Math.max(REQUEST_COST, this.#payloadOf(req));
        await this.#budget.acquire(() => this.#wire.failure, cost);
        if (this.#wire.failure) break;
        let data: Buffer | null = null;
        if (req.type === CMD.WRITE) {
          if (req.length > this.#agreed.blocks.maximum) {
            await this.#discard(req.length);
            this.#track(this.#reply(req, cost, Promise.reject(new RequestError(NBD_ERRNO.EOVERFLOW, `write of ${req.length} bytes exceeds the ${this.#agreed.blocks.maximum}-byte payload limit`))));
            continue;
          }
          data = await this.#wire.readInto(Buffer.allocUnsafe(req.length));
        }
        this.#track(this.#reply(req, cost, this.#execute(req, data)));
      }
    } catch {
      // The peer went away or broke the protocol (wire.ts has failed the socket): stop reading.
    }
    this.#budget.fail();
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Bytes this request moves (READ reply data or WRITE data), for the budget. */
  #payloadOf(req: Request): number {
    if (req.type !== CMD.READ && req.type !== CMD.WRITE) return req.type === CMD.BLOCK_STATUS ? SIZE.BLOCK_DESCRIPTOR * this.#limits.maxExtents : 0;
    return Math.min(req.length, this.#agreed.blocks.maximum);
  }

  #track(p: Promise<void>): void {
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  async #discard(length: number): Promise<void> {
    const piece = Buffer.allocUnsafe(Math.min(DISCARD_PIECE, length));
    for (let left = length; left > 0; left -= piece.length) await this.#wire.readInto(left >= piece.length ? piece : piece.subarray(0, left));
  }

  /** Run one request's checks and work; the result is what to send. */
  async #execute(req: Request, data: Buffer | null): Promise<Buffer | null> {
    this.#check(req);
    const b = this.#backend;
    const fua = (req.flags & CMD_FLAG.FUA) !== 0;
    switch (req.type) {
      case CMD.READ:
        return b.read(req.offset, req.length);
      case CMD.WRITE:
        await b.write(req.offset, data!, fua);
        return null;
      case CMD.WRITE_ZEROES:
        await b.writeZeroes(req.offset, req.length, fua);
        return null;
      case CMD.TRIM:
        await b.trim(req.offset, req.length);
        return null;
      case CMD.FLUSH:
        await b.flush();
        return null;
      case CMD.BLOCK_STATUS: {
        const max = (req.flags & CMD_FLAG.REQ_ONE) !== 0 ? 1 : this.#limits.maxExtents;
        const extents = await b.status(req.offset, req.length, max);
        const descriptors = extents.map((e) => ({ length: e.length, flags: (e.hole ? STATE.HOLE : 0) | (e.zero ? STATE.ZERO : 0) }));
        return encodeBlockStatus(ALLOCATION_CONTEXT_ID, descriptors);
      }
      default:
        throw new RequestError(NBD_ERRNO.EINVAL, `unknown command ${req.type}`);
    }
  }

  #check(req: Request): void {
    const { type, offset, length, flags } = req;
    const b = this.#backend;
    const blocks = this.#agreed.blocks;
    if (flags & ~KNOWN_FLAGS) throw new RequestError(NBD_ERRNO.EINVAL, `unknown command flags 0x${flags.toString(16)}`);
    if ((flags & CMD_FLAG.DF) && (type !== CMD.READ || !this.#agreed.structured)) throw new RequestError(NBD_ERRNO.EINVAL, 'NBD_CMD_FLAG_DF only applies to structured reads');
    if ((flags & CMD_FLAG.REQ_ONE) && type !== CMD.BLOCK_STATUS) throw new RequestError(NBD_ERRNO.EINVAL, 'NBD_CMD_FLAG_REQ_ONE only applies to NBD_CMD_BLOCK_STATUS');
    const writes = type === CMD.WRITE || type === CMD.WRITE_ZEROES || type === CMD.TRIM;
    if (type === CMD.FLUSH) {
      if (offset !== 0 || length !== 0) throw new RequestError(NBD_ERRNO.EINVAL, 'NBD_CMD_FLUSH must have offset and length 0');
      return;
    }
    if (!writes && type !== CMD.READ && type !== CMD.BLOCK_STATUS) throw new RequestError(NBD_ERRNO.EINVAL, `unknown command ${type}`);
    if (type === CMD.READ && length > blocks.maximum) throw new RequestError(NBD_ERRNO.EOVERFLOW, `read of ${length} bytes exceeds the ${blocks.maximum}-byte payload limit`);
    if (writes && !b.writable) throw new RequestError(NBD_ERRNO.EPERM, 'the export is read-only');
    if (type === CMD.BLOCK_STATUS && !this.#agreed.allocation) throw new RequestError(NBD_ERRNO.EINVAL, 'no metadata context was selected (base:allocation)');
    if (length === 0) throw new RequestError(NBD_ERRNO.EINVAL, 'empty request');
    if (offset + length > b.size) {
      throw new RequestError(writes && type !== CMD.TRIM ? NBD_ERRNO.ENOSPC : NBD_ERRNO.EINVAL, `[${offset}, ${offset + length}) is outside the export (${b.size} bytes)`);
    }
    if (this.#agreed.strictBlocks && type !== CMD.BLOCK_STATUS && (offset % blocks.minimum !== 0 || length % blocks.minimum !== 0)) {
      throw new RequestError(NBD_ERRNO.EINVAL, `offset ${offset} and length ${length} must be multiples of ${blocks.minimum}`);
    }
  }

  /** Wait for the work, send its reply (or its error), give the budget back once the reply is written. */
  async #reply(req: Request, cost: number, work: Promise<Buffer | null>): Promise<void> {
    try {
      let out: Buffer | null;
      try {
        out = await work;
      } catch (err) {
        await this.#sendError(req, err);
        return;
      }
      await this.#send(req, out);
      if (req.type === CMD.READ && out) this.#backend.readDone?.(out);
    } finally {
      this.#budget.release(cost);
    }
  }

  async #send(req: Request, out: Buffer | null): Promise<void> {
    const w = this.#wire;
    if (!this.#agreed.structured) {
      const header = encodeSimpleReply({ error: 0, cookie: req.cookie });
      await (out ? w.writeFlushed(header, out) : w.writeFlushed(header));
      return;
    }
    if (req.type === CMD.READ) {
      // Chunk header, offset, then the data as it is (no copy), written back to back.
      const head = encodeChunkHeader({ flags: REPLY_FLAG.DONE, type: REPLY_TYPE.OFFSET_DATA, cookie: req.cookie, length: SIZE.OFFSET_DATA_HEADER + out!.length });
      const offset = encodeOffsetData(req.offset, Buffer.alloc(0));
      await w.writeFlushed(head, offset, out!);
    } else if (req.type === CMD.BLOCK_STATUS) {
      await w.writeFlushed(encodeChunk(REPLY_FLAG.DONE, REPLY_TYPE.BLOCK_STATUS, req.cookie, out!));
    } else {
      await w.writeFlushed(encodeSimpleReply({ error: 0, cookie: req.cookie }));
    }
  }

  async #sendError(req: Request, err: unknown): Promise<void> {
    const { errno, message } = errnoOf(err);
    if (!this.#agreed.structured) {
      await this.#wire.writeFlushed(encodeSimpleReply({ error: errno, cookie: req.cookie }));
      return;
    }
    await this.#wire.writeFlushed(encodeChunk(REPLY_FLAG.DONE, REPLY_TYPE.ERROR, req.cookie, encodeErrorChunk({ error: errno, message })));
  }
}

/** The NBD error value and message for a failure. */
function errnoOf(err: unknown): { errno: number; message: string } {
  if (err instanceof RequestError) return { errno: err.errno, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  const system = isSvError(err) ? err.cause : err;
  const full = (system as { code?: unknown } | null | undefined)?.code === 'ENOSPC' || hasCode(err, 'SV_ERR_CORE_NO_SPACE');
  if (full) return { errno: NBD_ERRNO.ENOSPC, message };
  return { errno: NBD_ERRNO.EIO, message };
}

