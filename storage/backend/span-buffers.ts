/**
 * Buffers for fetched pack spans that circulate instead of being allocated per GET. A restore on object storage
 * fetches ~1.8 GB of spans on the main thread (s3-get.ts reads each GET's body straight into one of these)
 * and moves them to the workers, which decode them and move them back with their result (ReadBlobsResult.
 * spent); the main thread puts them back here. Fresh 8 MiB allocations moved away cost the main thread a
 * major garbage collection every ~100-200 MB (V8 counts them as external memory) and a page fault per 4 KiB
 * touched; reused ones cost neither.
 *
 * A buffer handed out is a view of exactly the asked length at offset 0 of an ArrayBuffer that belongs to it
 * alone (capacity rounded up to GRAIN), so it can be transferred whole. `ownsWhole` tells such views apart
 * from Node's pooled small buffers, which share their ArrayBuffer and must never be transferred. Per thread;
 * at most KEEP_COUNT buffers and KEEP_BYTES are kept.
 */

/** Smallest length handed out from here (smaller ones are Buffer.allocUnsafe's, copied when moved). */
export const SPAN_BUFFER_MIN = 64 * 1024;
const GRAIN = 1024 * 1024;
const KEEP_BYTES = 256 * 1024 * 1024;
const KEEP_COUNT = 64;

const free: ArrayBuffer[] = [];
let freeBytes = 0;
const mine = new WeakSet<ArrayBuffer>();

/** A buffer of exactly `length` bytes (uninitialised) at offset 0 of an ArrayBuffer of its own. */
export function takeSpanBuffer(length: number): Buffer {
  if (length < SPAN_BUFFER_MIN) return Buffer.allocUnsafe(length);
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    const cap = free[i]!.byteLength;
    if (cap >= length && cap <= length * 2 && (best < 0 || cap < free[best]!.byteLength)) best = i;
  }
  if (best >= 0) {
    const ab = free.splice(best, 1)[0]!;
    freeBytes -= ab.byteLength;
    return Buffer.from(ab, 0, length);
  }
  const ab = new ArrayBuffer(Math.ceil(length / GRAIN) * GRAIN);
  mine.add(ab);
  return Buffer.from(ab, 0, length);
}

/** Whether `view` may be moved to another thread by transferring its ArrayBuffer (it is the only view on it). */
export function ownsWhole(view: Uint8Array): boolean {
  return view.byteOffset === 0 && (view.byteLength === view.buffer.byteLength || mine.has(view.buffer as ArrayBuffer));
}

/** Buffers back from a worker (or done with): kept for takeSpanBuffer while under KEEP_BYTES. */
export function giveBackSpanBuffers(buffers: readonly ArrayBuffer[]): void {
  for (const ab of buffers) {
    // Only buffers cut here (whole GRAINs): other moved-back buffers (small copies) would crowd them out.
    if (ab.byteLength === 0 || ab.byteLength % GRAIN !== 0 || freeBytes + ab.byteLength > KEEP_BYTES || free.length >= KEEP_COUNT) continue;
    mine.add(ab); // a moved-back ArrayBuffer is a new object on this thread
    free.push(ab);
    freeBytes += ab.byteLength;
  }
}
