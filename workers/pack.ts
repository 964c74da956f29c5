/** Task `pack`: the native packBlocks over a transferred or shared byte range; results moved back. */
import { SvError } from '../src/errors/index.js';
import { loadNative, nativeError } from '../src/native/index.js';
import { moved, type Moved } from './handler.js';
import type { PackRequest, PackResult } from './tasks.js';

export function packTask(req: PackRequest): Moved<PackResult> {
  const { data, byteOffset, byteLength, blockSize, level } = req;
  if (!(data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) || byteOffset < 0 || byteOffset + byteLength > data.byteLength) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `pack: byte range [${byteOffset}, ${byteOffset + byteLength}) outside data of ${data?.byteLength ?? 'no'} bytes`, {
      byteOffset,
      byteLength,
    });
  }
  let raw: PackResult;
  try {
    raw = loadNative().packBlocks(new Uint8Array(data, byteOffset, byteLength), blockSize, level);
  } catch (err) {
    throw nativeError(err, { blockSize, level, length: byteLength });
  }
  return moved(raw, [raw.offsets.buffer as ArrayBuffer, raw.payload.buffer as ArrayBuffer]);
}
