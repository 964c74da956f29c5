/**
 * The domain interface every virtual disk format implements (VHD, VHDX, raw; later NBD and agents'
 * sources). The sync engine, restore and the CLI depend on this module only, never on a format's
 * implementation.
 */

/** What a byte range of the virtual disk is, as far as the image's metadata tells (through the parent chain). */
export type ExtentKind =
  /** Bytes stored in the image (or a parent): must be read. */
  | 'data'
  /** Known to read as zero (VHDX ZERO/UNMAPPED state, sparse hole in raw): no read needed. */
  | 'zero'
  /** Never written anywhere in the chain (VHD/VHDX block not present): reads as zero. */
  | 'unallocated';

export interface Extent {
  /** Byte offset in the virtual disk. */
  readonly offset: number;
  /** Length in bytes (> 0). Adjacent extents of the same kind are merged. */
  readonly length: number;
  readonly kind: ExtentKind;
}

export type DiskFormat = 'vhd' | 'vhdx' | 'raw';

export type DiskVariant = 'fixed' | 'dynamic' | 'differencing';

export interface DiskInfo {
  readonly path: string;
  readonly format: DiskFormat;
  readonly variant: DiskVariant;
  /** Virtual disk size in bytes. */
  readonly virtualSize: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  /** The format's own allocation unit (VHD/VHDX block size; raw: 1 MiB by convention). */
  readonly blockSize: number;
  /** Identity (VHD footer unique id / VHDX DataWriteGuid), when the format has one. */
  readonly id?: string;
  /** Parent image of a differencing disk, already opened and checked. */
  readonly parent?: DiskInfo;
  /** Anything else the reader knows, printed by `shadowvault disk info`. */
  readonly extra: Readonly<Record<string, unknown>>;
}

/**
 * An open, read-only virtual disk. Contract:
 * - `read` returns exactly `length` bytes for any range inside [0, virtualSize); outside it throws
 *   SV_ERR_FORMAT_READ_RANGE. Unallocated and zero ranges read as zeros. Large sequential reads are fast
 *   (the engine reads 1-64 MiB at a time).
 * - `extents` covers [0, virtualSize) exactly, in order, without gaps or overlaps.
 * - Corrupt images throw catalogued SV_ERR_FORMAT_* / SV_ERR_VHD_* / SV_ERR_VHDX_* errors naming the file,
 *   the structure, the offset, what was expected and what was found.
 * - The source file is never modified.
 */
export interface DiskImage {
  readonly info: DiskInfo;
  extents(): Promise<Extent[]>;
  /** Read into `target` (when given, must be at least `length` bytes) or a new buffer. */
  read(offset: number, length: number, target?: Buffer): Promise<Buffer>;
  /**
   * Optional: a buffer `read` returned (without a target) is no longer used by the caller; the image may reuse
   * its memory. Callers that never call it lose nothing but the reuse. At most once per read.
   */
  release?(data: Buffer): void;
  close(): Promise<void>;
}

/**
 * An ordered source of blocks for the writers: for each block index in increasing order, either its bytes
 * (exactly `blockSize`, the last block may be shorter) or null for a block that is all zero / unallocated.
 */
export interface BlockSource {
  readonly virtualSize: number;
  readonly blockSize: number;
  blocks(): AsyncIterable<{ index: number; data: Buffer | null }>;
}
