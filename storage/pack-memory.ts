/**
 * A pack built in memory, for a store that is not a local folder (object storage). Same format as a staged pack
 * (layout.ts: 32-byte header, then 48-byte record headers and payloads back to back); the records are copied
 * into one buffer as they are appended, and the closed pack is put from that buffer
 * (`backend.put('packs/<id>.pack', bytes)`). S3Backend sends its multipart parts as views of it.
 *
 * Why not a staging file, as for a folder store: there the staging file IS the pack (put links it into place).
 * On object storage a staging file was written to the page cache and read back whole to be sent, two kernel
 * copies and the part buffers' garbage per byte stored (docs/BENCHMARKS.md, "S3 backend (issue 13)": the
 * upload path's CPU), for nothing a put needs: a put either completes (the object is durable in the bucket)
 * or leaves an incomplete multipart upload that cleanup aborts.
 *
 * Invariants:
 * - kill -9 at any moment leaves nothing local: a pack being filled is lost with the process (no index segment
 *   names it yet), a pack being put leaves an incomplete multipart upload (cleanup) or a complete object that no
 *   segment names (an orphan: gc's rule), exactly what a killed put from a staging file left.
 * - Memory: a buffer holds one pack (target size plus slack, grown when a record does not fit). PackWriter keeps
 *   at most PUTS_IN_FLIGHT closed packs being put, plus the one filling, and waits before it closes another.
 *   A buffer goes back to a small process-wide free list only after its put resolved (every request that read
 *   it has been answered); after a failed put it is dropped (a part request may still be sending it).
 */
import { PACK_HEADER_SIZE, RECORD_HEADER_SIZE } from './layout.js';
import { writePackHeader, writeRecordHeader } from './pack-format.js';

/** Room beyond the target size (the record that crosses the target goes into the same pack). */
const SLACK = 1024 * 1024;

/** Free buffers kept for the next pack (one filling, two being put: PackWriter's bound). */
const FREE_MAX = 3;
const free: Buffer[] = [];

function take(capacity: number): Buffer {
  const i = free.findIndex((b) => b.length === capacity);
  return i >= 0 ? free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(capacity);
}

export class MemoryPack {
  readonly id: bigint;
  /** Bytes of the pack so far (header included). */
  size: number;
  #buf: Buffer;
  #pooled: boolean;

  constructor(id: bigint, targetSize: number) {
    this.id = id;
    this.#buf = take(targetSize + SLACK);
    this.#pooled = true;
    writePackHeader(this.#buf, id);
    this.size = PACK_HEADER_SIZE;
  }

  /** Append one record (header and payload); returns the payload's offset in the pack. */
  append(digest: Uint8Array, flag: number, rawLength: number, payload: Uint8Array): number {
    const need = this.size + RECORD_HEADER_SIZE + payload.length;
    if (need > this.#buf.length) {
      // A record larger than the slack: a bigger buffer of its own (never pooled: pooled ones share one size).
      const bigger = Buffer.allocUnsafeSlow(Math.max(need, 2 * this.#buf.length));
      this.#buf.copy(bigger, 0, 0, this.size);
      if (this.#pooled && free.length < FREE_MAX) free.push(this.#buf);
      this.#buf = bigger;
      this.#pooled = false;
    }
    writeRecordHeader(this.#buf, this.size, digest, payload.length, rawLength, flag);
    const offset = this.size + RECORD_HEADER_SIZE;
    this.#buf.set(payload, offset);
    this.size = need;
    return offset;
  }

  /** The pack's bytes (a view: valid until release()). */
  bytes(): Buffer {
    return this.#buf.subarray(0, this.size);
  }

  /** The put of bytes() resolved: nothing reads the buffer any more; it serves the next pack. */
  release(): void {
    if (this.#pooled && free.length < FREE_MAX) free.push(this.#buf);
    this.#pooled = false;
  }
}
