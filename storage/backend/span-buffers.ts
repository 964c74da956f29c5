/**
 * Buffers for fetched pack spans, shared with the workers instead of allocated per GET and moved. A restore on
 * object storage fetches ~1.8 GB of spans on the main thread (s3-get.ts reads each GET's body straight into one
 * of these) for the workers to decode. ArrayBuffers that the main thread allocates and moves away, or gets
 * back, count as new external memory for V8: with a ~12 MB heap that started a major garbage collection
 * every few tens of MB (~120 per restore of the benchmark's 4 GiB, ~2 CPU-s with their concurrent marking).
 * These buffers are SharedArrayBuffers made once and reused: a task carries a view of one (cloned, not moved:
 * the worker reads the same memory) and the sender gives it back once the task has answered
 * (giveBackSpanBuffers); nothing is allocated, moved or collected per GET, and no page is faulted in again.
 *
 * A buffer handed out is a Buffer of exactly the asked length at offset 0 of its own SharedArrayBuffer
 * (capacity rounded up to a grain). Whoever takes one owns it until it gives it back; it must not be given
 * back while a task may still read it (after a failed or aborted task, drop it instead). Per thread; at most
 * KEEP_COUNT buffers and KEEP_BYTES are kept.
 */

/** Smallest length handed out from here (smaller ones are Buffer.allocUnsafe's). */
export const SPAN_BUFFER_MIN = 64 * 1024;
const KEEP_BYTES = 256 * 1024 * 1024;
const KEEP_COUNT = 64;

const free: SharedArrayBuffer[] = [];
let freeBytes = 0;

/** Capacity for `length`: whole 64 KiB up to 1 MiB, whole MiB above. */
function capacity(length: number): number {
  const grain = length <= 1 << 20 ? 64 << 10 : 1 << 20;
  return Math.ceil(length / grain) * grain;
}

/** A buffer of exactly `length` bytes (uninitialised), shared (see the top comment) when ≥ SPAN_BUFFER_MIN. */
export function takeSpanBuffer(length: number): Buffer {
  if (length < SPAN_BUFFER_MIN) return Buffer.allocUnsafe(length);
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    const cap = free[i]!.byteLength;
    if (cap >= length && cap <= length * 2 && (best < 0 || cap < free[best]!.byteLength)) best = i;
  }
  if (best >= 0) {
    const sab = free.splice(best, 1)[0]!;
    freeBytes -= sab.byteLength;
    return Buffer.from(sab, 0, length);
  }
  return Buffer.from(new SharedArrayBuffer(capacity(length)), 0, length);
}

/** Whether `view` is backed by shared memory (sent to a worker as it is: never transferred, never copied). */
export function isShared(view: Uint8Array): view is Uint8Array & { buffer: SharedArrayBuffer } {
  return view.buffer instanceof SharedArrayBuffer;
}

/** Buffers nobody reads any more: kept for takeSpanBuffer while under KEEP_COUNT and KEEP_BYTES. */
export function giveBackSpanBuffers(buffers: readonly SharedArrayBuffer[]): void {
  for (const sab of buffers) {
    if (sab.byteLength === 0 || freeBytes + sab.byteLength > KEEP_BYTES || free.length >= KEEP_COUNT || free.includes(sab)) continue;
    free.push(sab);
    freeBytes += sab.byteLength;
  }
}
