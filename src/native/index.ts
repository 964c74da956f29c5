/**
 * The native hot path, typed: `packBlocks` (digest + zero check + zstd frame for every block of a batch in
 * one native pass), `unpackBlock` (decode + digest check), `unpackBlockInto` (the same, straight into a caller's
 * buffer: no intermediate buffer, no copy), `hash` (BLAKE3-256), `isZero`, `alignmentGap`/`allocAligned` (page-aligned
 * buffers for O_DIRECT writes), `md5Parts` (the MD5 of each part of a multipart upload, several parts per SIMD pass).
 *
 * Which zstd where: this addon compresses and verifies backup blocks (the hot path, one frame per block);
 * zstd-napi is the JavaScript side's zstd for streams (exports, archives). Both read each other's frames.
 *
 * Errors thrown by the addon carry a `code`; they are rebuilt here as SvError with the same code
 * (SV_ERR_NATIVE_DIGEST_MISMATCH, SV_ERR_NATIVE_CORRUPT_PAYLOAD, SV_ERR_NATIVE_BAD_ARGUMENT, ...).
 */
import { isCatalogued, SvError } from '../errors/index.js';
import { loadNative } from './load.js';
import { DIGEST_LENGTH, type BlockFlag, type PackedBatch, type PackedBlock, type RawPackResult } from './types.js';

export * from './types.js';
export { loadNative, NATIVE_DIR } from './load.js';

/** An error thrown by the addon as an SvError with the same code (unknown codes: SV_ERR_NATIVE_INTERNAL). */
export function nativeError(err: unknown, details: Record<string, unknown> = {}): SvError {
  if (err instanceof SvError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code.startsWith('SV_ERR_NATIVE_') && isCatalogued(code)) {
    return new SvError(code, message, details, { cause: err });
  }
  return new SvError('SV_ERR_NATIVE_INTERNAL', message, details, { cause: err });
}

function asBuffer(view: Uint8Array): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** A PackedBatch from the addon's (or a worker's) raw result: Buffer views, no copies. */
export function toPackedBatch(raw: RawPackResult, blockSize: number, inputLength: number): PackedBatch {
  return {
    count: raw.count,
    blockSize,
    inputLength,
    offsets: raw.offsets,
    digests: asBuffer(raw.digests),
    flags: raw.flags,
    payload: asBuffer(raw.payload),
  };
}

/**
 * Pack `buffer` in blocks of `blockSize` bytes (the last may be short) at zstd `level`: per block its
 * BLAKE3 digest, its flag and its payload. Zero blocks are neither hashed nor compressed.
 */
export function packBlocks(buffer: Uint8Array, blockSize: number, level: number): PackedBatch {
  const addon = loadNative();
  let raw: RawPackResult;
  try {
    raw = addon.packBlocks(buffer, blockSize, level);
  } catch (err) {
    throw nativeError(err, { blockSize, level, length: buffer?.byteLength ?? null });
  }
  return toPackedBatch(raw, blockSize, buffer.byteLength);
}

/** Uncompressed size of block `index` of a batch. */
export function blockSizeAt(batch: PackedBatch, index: number): number {
  return Math.min(batch.blockSize, batch.inputLength - index * batch.blockSize);
}

/** Block `index` of a batch as views (no copies). */
export function blockAt(batch: PackedBatch, index: number): PackedBlock {
  if (!Number.isInteger(index) || index < 0 || index >= batch.count) {
    throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `block index ${index} outside batch of ${batch.count} blocks`, { index, count: batch.count });
  }
  return {
    index,
    flag: batch.flags[index] as BlockFlag,
    digest: batch.digests.subarray(index * DIGEST_LENGTH, (index + 1) * DIGEST_LENGTH),
    payload: batch.payload.subarray(batch.offsets[index], batch.offsets[index + 1]),
    size: blockSizeAt(batch, index),
  };
}

/**
 * Decode one block and check its digest; returns `size` bytes. For a RAW block the result shares memory
 * with `payload` (no copy). A ZERO block (empty payload, ZERO_DIGEST) decodes to `size` zero bytes: its
 * digest does not bind the size, the caller's index does. Throws SV_ERR_NATIVE_DIGEST_MISMATCH or
 * SV_ERR_NATIVE_CORRUPT_PAYLOAD.
 */
export function unpackBlock(payload: Uint8Array, flag: BlockFlag | number, expectedDigest: Uint8Array, size: number): Buffer {
  const addon = loadNative();
  try {
    return asBuffer(addon.unpackBlock(payload, flag, expectedDigest, size));
  } catch (err) {
    throw nativeError(err, { flag, size, payloadLength: payload?.byteLength ?? null });
  }
}

/**
 * Decode one block straight into `target[offset, offset + size)` and check its digest (restore's hot path: no
 * intermediate buffer and no copy). Returns `size`. On an error the bytes of that range are unspecified.
 * `payload` must not overlap that range. Throws SV_ERR_NATIVE_DIGEST_MISMATCH, SV_ERR_NATIVE_CORRUPT_PAYLOAD,
 * or SV_ERR_NATIVE_BAD_ARGUMENT (range outside `target`, overlap, bad digest length).
 */
export function unpackBlockInto(payload: Uint8Array, flag: BlockFlag | number, expectedDigest: Uint8Array, target: Uint8Array, offset: number, size: number): number {
  const addon = loadNative();
  try {
    return addon.unpackBlockInto(payload, flag, expectedDigest, target, offset, size);
  } catch (err) {
    throw nativeError(err, { flag, size, offset, payloadLength: payload?.byteLength ?? null, targetLength: target?.byteLength ?? null });
  }
}

/**
 * Allocations of at least `bytes` (4 KiB..32 MiB) get their own mapping and go back to the system when freed
 * (glibc mallopt M_MMAP_THRESHOLD, process-wide). glibc's default threshold is dynamic: once a big block has
 * been freed, every later block of that size comes from the heap, where freed memory stays resident, so a
 * process that moves many 1-16 MiB buffers keeps its peak for good. Returns false when the allocator refused
 * it or the addon is an older build without it.
 */
export function setMmapThreshold(bytes: number): boolean {
  const addon = loadNative() as { setMmapThreshold?: (n: number) => boolean };
  if (typeof addon.setMmapThreshold !== 'function') return false;
  try {
    return addon.setMmapThreshold(bytes);
  } catch (err) {
    throw nativeError(err, { bytes });
  }
}

/** BLAKE3-256 of `buffer` (32 bytes). */
export function hash(buffer: Uint8Array): Buffer {
  try {
    return loadNative().hash(buffer);
  } catch (err) {
    throw nativeError(err);
  }
}

/**
 * An export newer than loadNative's API check: an addon built before it still serves the other exports, and
 * this one is SV_ERR_NATIVE_LOAD_FAILED naming the rebuild.
 */
function newerExport<K extends 'md5Parts' | 'alignmentGap'>(name: K): NonNullable<ReturnType<typeof loadNative>[K]> {
  const addon = loadNative();
  const fn = addon[name];
  if (typeof fn !== 'function') {
    throw new SvError('SV_ERR_NATIVE_LOAD_FAILED', `the native addon has no ${name} export (stale build); run \`npm run build:native\``, { export: name });
  }
  return fn.bind(addon) as NonNullable<ReturnType<typeof loadNative>[K]>;
}

/**
 * The MD5 of every `partSize`-byte part of `buffer` (the last may be shorter; an empty buffer is one empty part),
 * 16 bytes each, in order: the Content-MD5 of each part of a multipart upload. Eight parts go through one SIMD
 * pass (native/src/md5.rs), about 3-5x OpenSSL's one-message-at-a-time MD5 on AVX-512 (docs/BENCHMARKS.md).
 */
export function md5Parts(buffer: Uint8Array, partSize: number): Buffer {
  const md5 = newerExport('md5Parts');
  try {
    return md5(buffer, partSize);
  } catch (err) {
    throw nativeError(err, { partSize, length: buffer?.byteLength ?? null });
  }
}

/** Is every byte of `buffer` zero? (vectorised; ~40 GB/s from cache) */
export function isZero(buffer: Uint8Array): boolean {
  try {
    return loadNative().isZero(buffer);
  } catch (err) {
    throw nativeError(err);
  }
}

/**
 * Bytes from the start of `view` to its first address that is a multiple of `align` (a power of two up to
 * 1 MiB); 0 for an empty view. `view.subarray(gap)` then starts aligned (O_DIRECT writes need it).
 */
export function alignmentGap(view: Uint8Array, align: number): number {
  const gap = newerExport('alignmentGap');
  try {
    return gap(view, align);
  } catch (err) {
    throw nativeError(err, { align, length: view?.byteLength ?? null });
  }
}

/**
 * A Buffer of `size` bytes (not zero-filled) whose memory starts at a multiple of `align` (default 4 KiB, a
 * page): carved out of its own ArrayBuffer of `size + align` bytes, so it can be transferred to or from a
 * worker (the backing memory does not move, the view keeps its offset).
 */
export function allocAligned(size: number, align = 4096): Buffer {
  const whole = Buffer.allocUnsafeSlow(size + align);
  const gap = alignmentGap(whole, align);
  return whole.subarray(gap, gap + size);
}

/** zstd levels the addon accepts. */
export function levelRange(): { min: number; max: number } {
  const c = loadNative().constants;
  return { min: c.MIN_LEVEL, max: c.MAX_LEVEL };
}

