/**
 * The VHDX file as the reader sees it after log replay: the bytes of the file (never modified), with the
 * replayed log writes laid over them in memory, and a logical size that may exceed the file's (the log's
 * LastFileOffset: bytes past the physical end read as zero).
 *
 * Invariants: overlay segments are sorted, disjoint, non-empty; a segment's data (when not null, which means
 * zeros) is exactly its length. Reads patch only the segments they intersect (binary search), so a file
 * without a log pays one comparison per read.
 */
import { SvError } from '../../errors/index.js';
import type { ImageFile } from '../file.js';

export interface OverlaySegment {
  readonly start: number;
  readonly end: number;
  /** The bytes of [start, end), or null for zeros. */
  readonly data: Buffer | null;
}

/** Builds the overlay: later writes win over earlier ones, as replaying the log in order would. */
export class OverlayBuilder {
  readonly #segs: OverlaySegment[] = [];

  /** Lay `data` (or zeros when null) over [start, start + length). */
  apply(start: number, length: number, data: Buffer | null): void {
    if (length <= 0) return;
    const end = start + length;
    const segs = this.#segs;
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.end <= start) lo = mid + 1;
      else hi = mid;
    }
    let j = lo;
    while (j < segs.length && segs[j]!.start < end) j++;
    const replacement: OverlaySegment[] = [];
    const first = segs[lo];
    if (first && lo < j && first.start < start) {
      replacement.push({ start: first.start, end: start, data: first.data ? first.data.subarray(0, start - first.start) : null });
    }
    replacement.push({ start, end, data });
    const last = segs[j - 1];
    if (last && lo < j && last.end > end) {
      replacement.push({ start: end, end: last.end, data: last.data ? last.data.subarray(end - last.start) : null });
    }
    segs.splice(lo, j - lo, ...replacement);
  }

  get segments(): readonly OverlaySegment[] {
    return this.#segs;
  }
}

export class FileView {
  readonly path: string;
  /** Logical size: max(file size, replayed log's LastFileOffset and writes). */
  readonly size: number;
  readonly file: ImageFile;
  readonly #segs: readonly OverlaySegment[];

  constructor(file: ImageFile, segments: readonly OverlaySegment[] = [], logicalSize = file.size) {
    this.file = file;
    this.path = file.path;
    this.#segs = segments;
    this.size = Math.max(logicalSize, file.size);
  }

  get replayed(): boolean {
    return this.#segs.length > 0 || this.size !== this.file.size;
  }

  /** Read exactly `length` bytes at `position` (which must lie inside the logical size; `what` names it). */
  async read(position: number, length: number, what: string, target?: Buffer, targetOffset = 0): Promise<Buffer> {
    if (!Number.isSafeInteger(position) || position < 0 || length < 0 || position + length > this.size) {
      throw new SvError('SV_ERR_FORMAT_TRUNCATED',
        `${this.path}: ${what} at offset ${position} (${length} bytes) lies past the end of the file (size ${this.size})`,
        { path: this.path, structure: what, offset: position, expected: `${length} bytes`, found: `file size ${this.size}` });
    }
    const buf = target ?? Buffer.allocUnsafe(length);
    const end = position + length;
    const physEnd = Math.min(end, this.file.size);
    if (physEnd > position) await this.file.readAt(position, physEnd - position, what, buf, targetOffset);
    if (end > physEnd) buf.fill(0, targetOffset + Math.max(0, physEnd - position), targetOffset + length);
    if (this.#segs.length > 0) this.#patch(position, end, buf, targetOffset);
    return buf;
  }

  #patch(position: number, end: number, buf: Buffer, targetOffset: number): void {
    const segs = this.#segs;
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.end <= position) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < segs.length && segs[i]!.start < end; i++) {
      const s = segs[i]!;
      const a = Math.max(s.start, position);
      const b = Math.min(s.end, end);
      if (s.data) s.data.copy(buf, targetOffset + a - position, a - s.start, b - s.start);
      else buf.fill(0, targetOffset + a - position, targetOffset + b - position);
    }
  }
}
