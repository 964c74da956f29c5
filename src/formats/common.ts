/** Small helpers shared by the format readers and writers: range checks, zero tests, extent lists. */
import { SvError } from '../errors/index.js';
import type { Extent, ExtentKind } from './types.js';

/** Throws SV_ERR_FORMAT_READ_RANGE unless [offset, offset+length) lies inside [0, virtualSize). */
export function checkReadRange(path: string, virtualSize: number, offset: number, length: number, target?: Buffer): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > virtualSize) {
    throw new SvError('SV_ERR_FORMAT_READ_RANGE', `${path}: read of ${length} bytes at ${offset} is outside the virtual disk (size ${virtualSize})`, {
      path, offset, length, virtualSize,
    });
  }
  if (target && target.length < length) {
    throw new SvError('SV_ERR_FORMAT_READ_RANGE', `${path}: target buffer of ${target.length} bytes is smaller than the read (${length})`, {
      path, offset, length, targetLength: target.length,
    });
  }
}

const ZERO_CHUNK = Buffer.alloc(1 << 20);

/** True when every byte of `buf` is zero (memcmp against a shared zero page: tens of GB/s). */
export function isZero(buf: Uint8Array): boolean {
  for (let at = 0; at < buf.length; at += ZERO_CHUNK.length) {
    const end = Math.min(buf.length, at + ZERO_CHUNK.length);
    if (Buffer.compare(buf.subarray(at, end), ZERO_CHUNK.subarray(0, end - at)) !== 0) return false;
  }
  return true;
}

/** A shared, never-written zero buffer of at least `length` bytes (do not modify). */
export function zeroBuffer(length: number): Buffer {
  return length <= ZERO_CHUNK.length ? ZERO_CHUNK.subarray(0, length) : Buffer.alloc(length);
}

/** Builds an extent list, merging adjacent runs of the same kind and dropping empty ones. */
export class ExtentBuilder {
  readonly #out: Extent[] = [];
  #offset = 0;
  #length = 0;
  #kind: ExtentKind | undefined;

  push(offset: number, length: number, kind: ExtentKind): void {
    if (length <= 0) return;
    if (this.#kind === kind && this.#offset + this.#length === offset) {
      this.#length += length;
      return;
    }
    this.#flush();
    this.#offset = offset;
    this.#length = length;
    this.#kind = kind;
  }

  #flush(): void {
    if (this.#kind !== undefined && this.#length > 0) this.#out.push({ offset: this.#offset, length: this.#length, kind: this.#kind });
  }

  done(): Extent[] {
    this.#flush();
    this.#kind = undefined;
    return this.#out;
  }
}

/** Totals per kind of an extent list (for `disk info`). */
export function extentSummary(extents: readonly Extent[]): Record<ExtentKind, number> {
  const sum: Record<ExtentKind, number> = { data: 0, zero: 0, unallocated: 0 };
  for (const e of extents) sum[e.kind] += e.length;
  return sum;
}
