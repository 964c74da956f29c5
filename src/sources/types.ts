/**
 * Disk sources: what the sync engine backs up, as a serialisable reference (it crosses the engine thread, the
 * worker pool and the agent connection) plus a registry of openers (registry.ts) that turn a reference into an
 * open `DiskSource`. Three kinds implement one contract, checked by one shared suite
 * (test/sources/contract.ts):
 *
 * - `file`:  a VHD/VHDX/raw image or block device the process can open (today's path sources; Hyper-V's
 *            frozen parent VHDX after a recovery checkpoint).
 * - `nbd`:   an NBD export on a unix socket (QEMU's own NBD server exporting a point-in-time view; `qemu-nbd
 *            --read-only` for a stopped VM's qcow2). Read as raw bytes; allocation from `base:allocation`.
 * - `agent`: a disk of a point-in-time view held by a host agent, read through the agent's control channel
 *            (the agent hashes and compresses at the source: only changed blocks cross the network).
 *
 * CONTRACT of an open DiskSource (in addition to the DiskImage contract of src/formats/types.ts, which it
 * extends: `info`, `extents`, `read`, `close`):
 * - `backupRange(req)` returns exactly what the worker task `storeBackupRange` returns for the same bytes: the
 *   digest of every block of the range, and the compressed payload of each block that is not zero and whose
 *   digest differs from `req.oldDigests` (all non-zero blocks when oldDigests is null). Byte for byte the same
 *   result whichever kind serves it (digests and payload are deterministic).
 * - Ranges are block-aligned: `offset` is a multiple of `blockSize`; `length` is a multiple of `blockSize`
 *   except for a range that ends at `virtualSize`. Anything else, or a range outside the disk, throws
 *   SV_ERR_SOURCE_BAD_RANGE.
 * - Errors are coded (SV_ERR_SOURCE_*, or the underlying SV_ERR_NBD_* / SV_ERR_FORMAT_* / SV_ERR_AGENT_*); a
 *   source that went away (VM crashed, agent disconnected) throws, it never returns zeros.
 * - `backupSpans(reqs)` (optional) is `reqs.map(backupRange)` in one go: the same results, in order, or the
 *   first error. A source that has it reads the ranges as one batch and hashes them in one worker task (the
 *   agent's view.spans: many small ranges of an incremental); callers fall back to backupRange without it.
 * - `close` is idempotent; after it every call throws.
 * - `bytesTransferred` counts the bytes that crossed a process or network boundary to serve this source
 *   (0 for `file`; NBD payload for `nbd`; both directions of the agent channel for `agent`).
 */
import type { DiskFormat, DiskImage } from '../formats/types.js';

export interface FileSourceRef {
  readonly kind: 'file';
  readonly path: string;
  /** Read as this format; null/absent: decided by name and content (src/formats/detect.ts). */
  readonly format?: DiskFormat | null;
  /** Roots the file must lie under when opened (util/confined.ts). */
  readonly roots?: readonly string[];
}

export interface NbdSourceRef {
  readonly kind: 'nbd';
  /** Unix socket of the NBD server. */
  readonly socket: string;
  readonly exportName: string;
  /** Name recorded in the point for this disk (the VM's device or file name). */
  readonly name: string;
  /** Meta context for changed blocks, e.g. `qemu:dirty-bitmap:sv-frozen-…` (optional). */
  readonly bitmapContext?: string;
  /**
   * A raw disk under a copy-before-write view (optional): big ranges are read from the disk file `path`
   * itself, kept only when export `cowExport` (the view's scratch node, same socket, `qemu:allocation-depth`)
   * shows nothing saved for them after the read; see nbd.ts.
   */
  readonly direct?: { readonly path: string; readonly cowExport: string };
}

export interface AgentSourceRef {
  readonly kind: 'agent';
  readonly agentId: string;
  /** The agent's backup session (one point-in-time view of a VM). */
  readonly session: string;
  /** Disk index inside the view. */
  readonly disk: number;
  readonly name: string;
  readonly virtualSize: number;
}

export type DiskSourceRef = FileSourceRef | NbdSourceRef | AgentSourceRef;
export type DiskSourceKind = DiskSourceRef['kind'];

/** A block range to hash and compress: the storeBackupRange request without the disk. */
export interface RangeRequest {
  readonly offset: number;
  readonly length: number;
  readonly blockSize: number;
  readonly level: number;
  /** The previous point's digests of these blocks (count × 32 bytes), or null to pack every non-zero block. */
  readonly oldDigests: Uint8Array | null;
}

export interface RangeResult {
  /** Digest of every block of the range (count × 32; zero digest for all-zero blocks). */
  readonly digests: Uint8Array;
  /** Relative indices of the blocks that were packed (changed, not zero). */
  readonly packed: Uint32Array;
  /** Flag of each packed block. */
  readonly flags: Uint8Array;
  /** Payload offsets of each packed block (packed.length + 1). */
  readonly offsets: Uint32Array;
  readonly payload: Uint8Array;
}

export interface DiskSource extends DiskImage {
  readonly ref: DiskSourceRef;
  backupRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult>;
  backupSpans?(reqs: readonly RangeRequest[], signal?: AbortSignal): Promise<RangeResult[]>;
  readonly bytesTransferred: number;
}

/** Opens one kind of reference. Registered once per process/thread in registry.ts. */
export type DiskSourceOpener<R extends DiskSourceRef = DiskSourceRef> = (ref: R, signal?: AbortSignal) => Promise<DiskSource>;
