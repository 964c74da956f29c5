/**
 * packBlocks on the worker pool. The input bytes reach the worker without a copy when they can:
 * - over a SharedArrayBuffer: shared, nothing moves;
 * - a view covering its whole ArrayBuffer (and `consume: true`): the ArrayBuffer is transferred, so the
 *   caller's buffer is detached (empty) afterwards;
 * - otherwise: copied once into a fresh ArrayBuffer that is transferred.
 * The result's buffers are transferred back and wrapped as Buffer views.
 * Shared bytes must not change while the task runs: the digest and the frame are computed in two reads.
 */
import { toPackedBatch, type PackedBatch } from '../native/index.js';
import { runTask } from './index.js';

export interface PackOptions {
  /** Allow detaching the caller's ArrayBuffer (no copy). Default false: copy once. */
  readonly consume?: boolean;
  readonly signal?: AbortSignal;
}

export async function packInPool(bytes: Uint8Array, blockSize: number, level: number, options: PackOptions = {}): Promise<PackedBatch> {
  const inputLength = bytes.byteLength;
  let data: ArrayBuffer | SharedArrayBuffer;
  let byteOffset = 0;
  let transfer: ArrayBuffer[] = [];
  if (bytes.buffer instanceof SharedArrayBuffer) {
    data = bytes.buffer;
    byteOffset = bytes.byteOffset;
  } else if (options.consume && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) {
    data = bytes.buffer;
    transfer = [data];
  } else {
    const copy = new Uint8Array(inputLength);
    copy.set(bytes);
    data = copy.buffer;
    transfer = [data];
  }
  const raw = await runTask('pack', { data, byteOffset, byteLength: inputLength, blockSize, level }, { transfer, signal: options.signal });
  return toPackedBatch(raw, blockSize, inputLength);
}
