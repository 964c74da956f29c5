/**
 * Primitives shared by the NBD codec modules: the coded errors a decoder throws, 64-bit fields as safe
 * integers, and length-prefixed strings with the protocol's 4096-byte cap. Nothing here does I/O.
 */
import { SvError } from '../errors/index.js';
import { LIMIT } from './protocol.js';

/** A decoded field that breaks the protocol: SV_ERR_NBD_PROTOCOL naming structure, field, expected, found. */
export function violation(structure: string, field: string, expected: string, found: unknown): SvError {
  return new SvError('SV_ERR_NBD_PROTOCOL', `NBD ${structure}: ${field} is ${String(found)}, expected ${expected}`, {
    structure,
    field,
    expected,
    found: typeof found === 'bigint' ? `0x${found.toString(16)}` : found,
  });
}

/** A peer-announced length or count above what we accept: SV_ERR_NBD_TOO_LARGE. */
export function tooLarge(structure: string, field: string, limit: number, found: number | bigint): SvError {
  return new SvError('SV_ERR_NBD_TOO_LARGE', `NBD ${structure}: ${field} ${String(found)} exceeds the limit ${limit}`, {
    structure,
    field,
    limit,
    found: typeof found === 'bigint' ? found.toString() : found,
  });
}

/** Check that `buf` holds exactly `size` bytes (a fixed-size structure). */
export function expectSize(structure: string, buf: Uint8Array, size: number): void {
  if (buf.length !== size) throw violation(structure, 'length', `${size} bytes`, buf.length);
}

/** Check that `buf` holds at least `size` bytes. */
export function expectAtLeast(structure: string, buf: Uint8Array, size: number): void {
  if (buf.length < size) throw violation(structure, 'length', `at least ${size} bytes`, buf.length);
}

export function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A u64 field that must fit a JavaScript safe integer (offsets, sizes). */
export function readSafeU64(buf: Buffer, at: number, structure: string, field: string): number {
  const v = buf.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw tooLarge(structure, field, Number.MAX_SAFE_INTEGER, v);
  return Number(v);
}

/** Encode a number into a u64 field, refusing non-integers and negatives. */
export function writeU64(buf: Buffer, value: number | bigint, at: number): void {
  const v = typeof value === 'bigint' ? value : BigInt(checkedInt(value, 'u64 field'));
  buf.writeBigUInt64BE(v, at);
}

export function checkedInt(value: number, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `${what} must be an integer in [0, ${max}], got ${value}`, { what, value });
  }
  return value;
}

/** UTF-8 bytes of a protocol string, refusing strings over 4096 bytes. */
export function stringBytes(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > LIMIT.STRING) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `${what} is ${bytes.length} bytes, the NBD limit is ${LIMIT.STRING}`, { what });
  }
  return bytes;
}

/** A string of `length` bytes at `at`, checked against the buffer and the 4096-byte cap. */
export function readString(buf: Buffer, at: number, length: number, structure: string, field: string): string {
  if (length > LIMIT.STRING) throw tooLarge(structure, `${field} length`, LIMIT.STRING, length);
  if (at + length > buf.length) throw violation(structure, `${field} length`, `at most ${buf.length - at}`, length);
  return buf.toString('utf8', at, at + length);
}

/** Cursor over a buffer for the variable-length option payloads; every read is bounds-checked. */
export class Cursor {
  #buf: Buffer;
  #at = 0;
  #structure: string;

  constructor(buf: Uint8Array, structure: string) {
    this.#buf = asBuffer(buf);
    this.#structure = structure;
  }

  get remaining(): number {
    return this.#buf.length - this.#at;
  }

  #need(n: number, field: string): void {
    if (this.remaining < n) throw violation(this.#structure, field, `${n} more bytes`, `${this.remaining} left`);
  }

  u16(field: string): number {
    this.#need(2, field);
    const v = this.#buf.readUInt16BE(this.#at);
    this.#at += 2;
    return v;
  }

  u32(field: string): number {
    this.#need(4, field);
    const v = this.#buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  /** A u32 length then that many bytes of string. */
  string32(field: string): string {
    const length = this.u32(`${field} length`);
    const text = readString(this.#buf, this.#at, length, this.#structure, field);
    this.#at += length;
    return text;
  }

  /** The rest as a string (names that run to the end of a payload). */
  rest(field: string): string {
    const text = readString(this.#buf, this.#at, this.remaining, this.#structure, field);
    this.#at = this.#buf.length;
    return text;
  }

  end(): void {
    if (this.remaining !== 0) throw violation(this.#structure, 'trailing bytes', '0', this.remaining);
  }
}

/** Builder for the variable-length payloads: u16/u32 fields and u32-length-prefixed strings. */
export class Builder {
  #parts: Buffer[] = [];

  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.#parts.push(b);
    return this;
  }

  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.#parts.push(b);
    return this;
  }

  string32(text: string, what: string): this {
    const bytes = stringBytes(text, what);
    this.u32(bytes.length);
    this.#parts.push(bytes);
    return this;
  }

  bytes(b: Buffer): this {
    this.#parts.push(b);
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.#parts);
  }
}
