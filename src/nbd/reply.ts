/**
 * Assembly of one request's reply from its chunks, with the checks the spec puts on them:
 *   READ          OFFSET_DATA / OFFSET_HOLE inside the request, never overlapping an earlier chunk; with
 *                 no error chunk the content must cover the whole request. Data is copied straight into
 *                 the result buffer (the client streams it there, see dataTarget), holes are zero-filled. Disjoint covered ranges are
 *                 capped at LIMIT.READ_FRAGMENTS so a server cannot make the bookkeeping grow unbounded.
 *   BLOCK_STATUS  exactly one BLOCK_STATUS chunk per selected context; all but the last descriptor inside
 *                 the request; the wanted context's extents are returned clipped to the request.
 * A chunk that breaks these rules throws SV_ERR_NBD_PROTOCOL (the client then closes the connection).
 * Error chunks are recorded and make `finish()` throw SV_ERR_NBD_REQUEST_FAILED: the connection survives.
 */
import { SvError } from '../errors/index.js';
import {
  chunkPayloadLimit,
  decodeBlockStatus,
  decodeErrorChunk,
  decodeOffsetData,
  decodeOffsetHole,
  isErrorChunk,
  violation,
  type ChunkHeader,
  type ErrorChunk,
} from './codec.js';
import { CMD, LIMIT, NBD_ERRNO, REPLY_TYPE, SIZE, constantName } from './protocol.js';

export interface NbdExtent {
  offset: number;
  length: number;
  flags: number;
}

/** What the client needs from a request in flight to route its reply. */
export interface ReplyAssembler<T> {
  readonly command: number;
  readonly offset: number;
  readonly length: number;
  /** Largest payload accepted for a chunk of this type. */
  payloadLimit(type: number): number;
  chunk(h: ChunkHeader, payload: Buffer): void;
  /** A simple reply (error 0 or not); for READ the data has been read into `target` by the client. */
  simple(error: number): void;
  /** After the final chunk: the result, or SV_ERR_NBD_REQUEST_FAILED. */
  finish(): T;
}

function commandName(command: number): string {
  return constantName(CMD, 'NBD_CMD_', command);
}

export function requestFailed(command: number, offset: number, length: number, e: ErrorChunk): SvError {
  const errno = constantName(NBD_ERRNO, 'NBD_', e.error);
  const at = e.offset !== undefined ? ` at offset ${e.offset}` : '';
  return new SvError('SV_ERR_NBD_REQUEST_FAILED', `NBD ${commandName(command)} [${offset}, +${length}) failed: ${errno}${at}${e.message ? ` (${e.message})` : ''}`, {
    command: commandName(command),
    offset,
    length,
    errno,
    error: e.error,
    message: e.message,
    errorOffset: e.offset ?? null,
  });
}

abstract class BaseReply<T> implements ReplyAssembler<T> {
  abstract readonly command: number;
  readonly offset: number;
  readonly length: number;
  protected errors: ErrorChunk[] = [];

  constructor(offset: number, length: number) {
    this.offset = offset;
    this.length = length;
  }

  get structure(): string {
    return `${commandName(this.command)} reply`;
  }

  abstract payloadLimit(type: number): number;
  protected abstract content(h: ChunkHeader, payload: Buffer): void;
  protected abstract result(): T;

  chunk(h: ChunkHeader, payload: Buffer): void {
    if (h.type === REPLY_TYPE.NONE) return;
    if (isErrorChunk(h.type)) {
      const e = decodeErrorChunk(h.type, payload);
      if (e.offset !== undefined && (e.offset < this.offset || e.offset >= this.offset + this.length)) {
        throw violation(this.structure, 'error offset', `inside [${this.offset}, ${this.offset + this.length})`, e.offset);
      }
      if (this.errors.length < 16) this.errors.push(e);
      return;
    }
    this.content(h, payload);
  }

  simple(error: number): void {
    if (error !== 0) this.errors.push({ error, message: '' });
  }

  finish(): T {
    const first = this.errors[0];
    if (first) throw requestFailed(this.command, this.offset, this.length, first);
    return this.result();
  }
}

/** A READ into `target` (length bytes; every byte is written before the result is returned). */
export class ReadReply extends BaseReply<Buffer> {
  readonly command = CMD.READ;
  readonly target: Buffer;
  /** Covered ranges relative to the request, sorted, disjoint, adjacent ones merged: [start, end) pairs. */
  #covered: number[] = [];

  constructor(offset: number, target: Buffer) {
    super(offset, target.length);
    this.target = target;
  }

  payloadLimit(type: number): number {
    return chunkPayloadLimit(type, this.length);
  }

  protected content(h: ChunkHeader, payload: Buffer): void {
    if (h.type === REPLY_TYPE.OFFSET_DATA) {
      const { offset, data } = decodeOffsetData(payload);
      data.copy(this.dataTarget(offset, data.length));
    } else if (h.type === REPLY_TYPE.OFFSET_HOLE) {
      const { offset, size } = decodeOffsetHole(payload);
      this.#cover(offset, size, 'NBD_REPLY_TYPE_OFFSET_HOLE');
      this.target.fill(0, offset - this.offset, offset - this.offset + size);
    } else {
      throw violation(this.structure, 'chunk type', 'OFFSET_DATA, OFFSET_HOLE, NONE or an error', h.type);
    }
  }

  /** Where an OFFSET_DATA chunk's `length` bytes at `offset` go (checked and recorded as covered). */
  dataTarget(offset: number, length: number): Buffer {
    this.#cover(offset, length, 'NBD_REPLY_TYPE_OFFSET_DATA');
    const at = offset - this.offset;
    return this.target.subarray(at, at + length);
  }

  #cover(offset: number, size: number, structure: string): void {
    const start = offset - this.offset;
    const end = start + size;
    if (start < 0 || end > this.length) {
      throw violation(structure, 'range', `inside [${this.offset}, ${this.offset + this.length})`, `[${offset}, ${offset + size})`);
    }
    const c = this.#covered;
    // First pair [c[i], c[i+1]) whose end is past `start`; pairs before it end at or before `start`.
    let lo = 0;
    let hi = c.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[2 * mid + 1]! <= start) lo = mid + 1;
      else hi = mid;
    }
    const i = 2 * lo;
    if (i < c.length && c[i]! < end) {
      throw violation(structure, 'range', 'no overlap with earlier chunks', `[${offset}, ${offset + size}) overlaps`);
    }
    const joinsLeft = i > 0 && c[i - 1] === start;
    const joinsRight = i < c.length && c[i] === end;
    if (joinsLeft && joinsRight) c.splice(i - 1, 2);
    else if (joinsLeft) c[i - 1] = end;
    else if (joinsRight) c[i] = start;
    else {
      if (c.length / 2 >= LIMIT.READ_FRAGMENTS) throw violation(this.structure, 'fragments', `at most ${LIMIT.READ_FRAGMENTS} disjoint chunks`, 'more');
      c.splice(i, 0, start, end);
    }
  }

  /** A simple reply with data: the client read it into `target`. */
  simpleData(): void {
    this.#covered = [0, this.length];
  }

  protected result(): Buffer {
    const c = this.#covered;
    if (c.length !== 2 || c[0] !== 0 || c[1] !== this.length) {
      throw violation(this.structure, 'content', `chunks covering [${this.offset}, ${this.offset + this.length})`, `covered ranges ${JSON.stringify(c.slice(0, 8))}`);
    }
    return this.target;
  }
}

/** A BLOCK_STATUS for all selected contexts; the result is the extents of `wantedId`. */
export class BlockStatusReply extends BaseReply<NbdExtent[]> {
  readonly command = CMD.BLOCK_STATUS;
  #contextIds: ReadonlySet<number>;
  #wantedId: number;
  #seen = new Set<number>();
  #extents: NbdExtent[] | null = null;
  #maxDescriptors: number;

  constructor(offset: number, length: number, contextIds: ReadonlySet<number>, wantedId: number) {
    super(offset, length);
    this.#contextIds = contextIds;
    this.#wantedId = wantedId;
    // Honest servers use extents of 512 bytes or more; allow 64 Ki regardless, never above 2^20.
    this.#maxDescriptors = Math.min(LIMIT.EXTENTS_PER_CHUNK, Math.max(65536, Math.ceil(length / 512) + 2));
  }

  payloadLimit(type: number): number {
    if (type === REPLY_TYPE.BLOCK_STATUS) return SIZE.BLOCK_STATUS_HEADER + SIZE.BLOCK_DESCRIPTOR * this.#maxDescriptors;
    return type === REPLY_TYPE.OFFSET_DATA || type === REPLY_TYPE.OFFSET_HOLE ? 0 : chunkPayloadLimit(type, 0);
  }

  protected content(h: ChunkHeader, payload: Buffer): void {
    if (h.type !== REPLY_TYPE.BLOCK_STATUS) throw violation(this.structure, 'chunk type', 'BLOCK_STATUS, NONE or an error', h.type);
    const { contextId, descriptors } = decodeBlockStatus(payload);
    if (!this.#contextIds.has(contextId)) throw violation('NBD_REPLY_TYPE_BLOCK_STATUS', 'context id', `one of ${[...this.#contextIds].join(', ')}`, contextId);
    if (this.#seen.has(contextId)) throw violation('NBD_REPLY_TYPE_BLOCK_STATUS', 'context id', 'one chunk per context', `${contextId} again`);
    this.#seen.add(contextId);
    let at = this.offset;
    const end = this.offset + this.length;
    const extents: NbdExtent[] = [];
    for (const d of descriptors) {
      if (at >= end) throw violation('NBD_REPLY_TYPE_BLOCK_STATUS', 'descriptors', `only the last one reaching ${end}`, `one starting at ${at}`);
      const length = Math.min(d.length, end - at);
      extents.push({ offset: at, length, flags: d.flags });
      at += length;
    }
    if (contextId === this.#wantedId) this.#extents = extents;
  }

  protected result(): NbdExtent[] {
    if (!this.#extents) throw violation(this.structure, 'chunks', `a BLOCK_STATUS chunk for context ${this.#wantedId}`, 'none');
    return this.#extents;
  }
}
