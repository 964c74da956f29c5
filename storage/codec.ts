/**
 * Blob encoding for the store, on top of the native addon: one blob = BLAKE3 digest of the raw bytes + flag
 * (ZERO / RAW / ZSTD) + payload. All-zero blobs have the all-zero digest and are never stored.
 */
import { hash, packBlocks, unpackBlock, ZERO_DIGEST } from '../src/native/index.js';
import { COMPRESSION_LEVEL, DIGEST_SIZE, FLAG_ZERO } from './layout.js';

export { ZERO_DIGEST };

export interface EncodedBlob {
  readonly digest: Buffer;
  readonly flag: number;
  readonly payload: Buffer;
}

/** Hash and compress one blob (a page). */
export function encodeBlob(raw: Buffer, level = COMPRESSION_LEVEL): EncodedBlob {
  const r = packBlocks(raw, raw.length, level);
  const flag = r.flags[0]!;
  return {
    digest: Buffer.from(r.digests.subarray(0, DIGEST_SIZE)),
    flag,
    payload: flag === FLAG_ZERO ? Buffer.alloc(0) : Buffer.from(r.payload.subarray(r.offsets[0]!, r.offsets[1]!)),
  };
}

/** Decode a payload; throws SV_ERR_NATIVE_DIGEST_MISMATCH / SV_ERR_NATIVE_CORRUPT_PAYLOAD. */
export function decodeBlob(payload: Buffer, flag: number, digest: Uint8Array, rawLength: number): Buffer {
  return unpackBlock(payload, flag, Buffer.from(digest.buffer, digest.byteOffset, digest.length), rawLength);
}

export function digestOf(raw: Buffer): Buffer {
  return hash(raw);
}

export function isZeroDigest(d: Uint8Array, offset = 0): boolean {
  for (let i = 0; i < DIGEST_SIZE; i++) if (d[offset + i] !== 0) return false;
  return true;
}
