/**
 * The volume store's on-disk layout and binary structures, declared once (see docs/STORE.md for the prose).
 *
 *   <store>/store.json                 identity + format version (written once at creation)
 *   <store>/sources/<name>.json        per data source settings: block size, retention
 *   <store>/points/<name>/<id>.json    recovery point manifests (immutable; published last)
 *   <store>/packs/<16 hex>.pack        pack files: header + records (blocks and index pages), fsynced once
 *   <store>/index/<seq>-<gen>.idx      immutable sorted index segments: digest → (pack, offset, lengths, flag)
 *   <store>/locks/*.lock               lock files (pid + host + operation), see lock.ts
 *   <store>/running/<id>.json          registrations of running backups (gc's cutoff for orphan packs)
 *   <store>/holds/<name>/<id>.<h>.json leases on points in use (browse, export): prune keeps them (holds.ts)
 *   <store>/bad.json                   digests verify found bad (the next sync rewrites them)
 *   <store>/gc.json                    gc generation (bumped after every sweep; backups validate reuse on change)
 *
 * All multi-byte integers are little-endian. Every header and record size is checked when read.
 */

export const STORE_FORMAT = 'shadowvault-store';
export const STORE_VERSION = 1;

export const DIGEST_SIZE = 32;
/** Flags of a stored blob: the native addon's BlockFlag values. */
export const FLAG_ZERO = 0;
export const FLAG_RAW = 1;
export const FLAG_ZSTD = 2;

/** Default block size of a data source (64 KiB: see docs/STORE.md "Why 64 KiB"). */
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
/** Children per index page: leaf pages hold 1024 block digests (32 KiB, 64 MiB of disk at 64 KiB blocks). */
export const PAGE_FANOUT = 1024;
/** A pack is closed (fsynced) once it holds this many bytes. */
export const PACK_TARGET_SIZE = 64 * 1024 * 1024;
/** zstd level for blocks and pages. */
export const COMPRESSION_LEVEL = 1;

/**
 * Pack file header (32 bytes):
 *   0  8  magic "SVPACK01"
 *   8  4  version (1)
 *  12  4  reserved (0)
 *  16  8  pack id (u64, also the file name in hex)
 *  24  8  reserved (0)
 */
export const PACK_MAGIC = 'SVPACK01';
export const PACK_VERSION = 1;
export const PACK_HEADER_SIZE = 32;

/**
 * Pack record header (48 bytes), followed by `storedLength` payload bytes:
 *   0 32  digest (BLAKE3 of the raw bytes)
 *  32  4  stored length (payload bytes that follow)
 *  36  4  raw length
 *  40  1  flag (RAW 1 / ZSTD 2)
 *  41  3  reserved
 *  44  4  record magic 0x52505653 ("SVPR")
 * Index entries point at the payload (record start + 48).
 */
export const RECORD_HEADER_SIZE = 48;
export const RECORD_MAGIC = 0x52505653;

/**
 * Index segment file: header (64 bytes) + count × entry (56 bytes), entries sorted by digest (bytewise).
 * Header:
 *   0  8  magic "SVIDX001"
 *   8  4  version (1)
 *  12  4  entry size (56)
 *  16  8  entry count
 *  24  8  sequence (segments with higher sequence win for duplicate digests)
 *  32 32  SHA-256 of the entries
 * Entry:
 *   0 32  digest
 *  32  8  pack id (u64)
 *  40  4  payload offset in the pack
 *  44  4  stored length
 *  48  4  raw length
 *  52  1  flag
 *  53  3  reserved
 */
export const INDEX_MAGIC = 'SVIDX001';
export const INDEX_VERSION = 1;
export const INDEX_HEADER_SIZE = 64;
export const INDEX_ENTRY_SIZE = 56;

/**
 * gc reference table (`<store>/gc-refs.bin`, storage/refs.ts): header (64 bytes) + JSON body + count × record.
 * Header:
 *   0  8  magic "SVREFS01"
 *   8  4  version (1)
 *  12  4  record size (40)
 *  16  8  JSON body length (bytes, UTF-8)
 *  24  8  record count
 *  32 32  SHA-256 of everything after the header (JSON body, then the records)
 * Record (a blob some point names, in any order, each digest once):
 *   0 32  digest
 *  32  4  references from pages (as a page: root of a disk, or child of an inner page)
 *  36  4  references from leaf pages (as a block)
 */
export const REFS_MAGIC = 'SVREFS01';
export const REFS_VERSION = 1;
export const REFS_HEADER_SIZE = 64;
export const REFS_RECORD_SIZE = 40;
export const REFS_FILE = 'gc-refs.bin';

export const SOURCE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const POINT_ID_RE = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;

export function packFileName(packId: bigint): string {
  return `${packId.toString(16).padStart(16, '0')}.pack`;
}

export function parsePackFileName(name: string): bigint | undefined {
  const m = /^([0-9a-f]{16})\.pack$/.exec(name);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

export function segmentFileName(seq: bigint, gen: number): string {
  return `${seq.toString().padStart(20, '0')}-${String(gen).padStart(6, '0')}.idx`;
}

export function parseSegmentFileName(name: string): { seq: bigint; gen: number } | undefined {
  const m = /^(\d{20})-(\d{6})\.idx$/.exec(name);
  return m ? { seq: BigInt(m[1]!), gen: Number(m[2]) } : undefined;
}
