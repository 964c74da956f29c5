/**
 * Types and constants of the native hot path (native/, loaded by ./index.ts).
 *
 * Block encoding, stable (stores persist the flags): ZERO (0) = all zero bytes, no payload, digest =
 * ZERO_DIGEST (32 zero bytes, never computed); RAW (1) = the bytes themselves; ZSTD (2) = one zstd frame
 * with its content size, no checksum. Digests are BLAKE3-256 of the uncompressed block.
 */

export const BLOCK_FLAG = { ZERO: 0, RAW: 1, ZSTD: 2 } as const;
export type BlockFlag = (typeof BLOCK_FLAG)[keyof typeof BLOCK_FLAG];

export const DIGEST_LENGTH = 32;

/** The digest recorded for all-zero blocks: 32 zero bytes. Do not mutate. */
export const ZERO_DIGEST: Buffer = Buffer.alloc(DIGEST_LENGTH);

/** Is `digest` the ZERO_DIGEST? */
export function isZeroDigest(digest: Uint8Array): boolean {
  return digest.length === DIGEST_LENGTH && digest.every((b) => b === 0);
}

/**
 * One packed batch: `count` blocks of `blockSize` bytes cut from `inputLength` bytes (the last may be
 * short). Block i: flag `flags[i]`, digest `digests[32i, 32i+32)`, payload `payload[offsets[i],
 * offsets[i+1])`. `offsets`, `digests` and `flags` share one ArrayBuffer; `payload` has its own.
 */
export interface PackedBatch {
  readonly count: number;
  readonly blockSize: number;
  readonly inputLength: number;
  readonly offsets: Uint32Array;
  readonly digests: Buffer;
  readonly flags: Uint8Array;
  readonly payload: Buffer;
}

/** One block of a batch, as views (no copies). */
export interface PackedBlock {
  readonly index: number;
  readonly flag: BlockFlag;
  readonly digest: Buffer;
  readonly payload: Buffer;
  /** Uncompressed size. */
  readonly size: number;
}

/** What the addon's `packBlocks` returns (the wrapper adds blockSize/inputLength and Buffer views). */
export interface RawPackResult {
  count: number;
  offsets: Uint32Array;
  digests: Uint8Array;
  flags: Uint8Array;
  payload: Uint8Array;
}

/** The addon's exports (native/src/lib.rs). */
export interface NativeAddon {
  packBlocks(buffer: Uint8Array, blockSize: number, level: number): RawPackResult;
  unpackBlock(payload: Uint8Array, flag: number, expectedDigest: Uint8Array, size: number): Buffer;
  unpackBlockInto(payload: Uint8Array, flag: number, expectedDigest: Uint8Array, target: Uint8Array, offset: number, size: number): number;
  hash(buffer: Uint8Array): Buffer;
  isZero(buffer: Uint8Array): boolean;
  /** 16 bytes per `partSize`-byte part of `buffer` (the last may be shorter; empty: one part): each part's MD5. */
  md5Parts(buffer: Uint8Array, partSize: number): Buffer;
  /** Bytes from the view's start to its first `align`-aligned address (0 for an empty view). */
  alignmentGap(view: Uint8Array, align: number): number;
  readonly constants: {
    readonly FLAG_ZERO: number;
    readonly FLAG_RAW: number;
    readonly FLAG_ZSTD: number;
    readonly DIGEST_LENGTH: number;
    readonly MIN_SAVING_DIVISOR: number;
    readonly MIN_LEVEL: number;
    readonly MAX_LEVEL: number;
  };
}
