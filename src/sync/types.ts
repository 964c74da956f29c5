import type { VmConfigDescription, VmConfiguration } from '../hypervisor/config.js';
/** Options and results of the sync engine's operations (the programmatic API; see index.ts). */
import type { WireError } from '../errors/index.js';
import type { DiskChangeRef, DiskStats, DiskTracking, PointStats } from '../../storage/manifest.js';
import type { Store } from '../../storage/store.js';
import type { DiskSourceRef } from '../sources/types.js';

export interface Progress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export type ProgressCallback = (p: Progress) => void;

/** What every operation takes: the store (folder or opened), cancellation, progress. */
export interface CommonOptions {
  /** Store folder, or an opened Store. */
  readonly store: string | Store;
  readonly signal?: AbortSignal;
  readonly progress?: ProgressCallback;
}

/** A changed byte range [offset, length] of a disk since the previous point. */
export type ChangedExtent = readonly [number, number];

export interface BackupOptions extends CommonOptions {
  /** Data source name (stable id of the protected VM). */
  readonly source: string;
  /**
   * The disks, in the data source's disk order, as serialisable references (src/sources/types.ts): local
   * image files (`fileRefs(paths, {formats, roots})` from src/sources/file.ts), NBD exports, agents' disks.
   */
  readonly disks: readonly DiskSourceRef[];
  /**
   * Per disk: the changed extents since the previous point (a dirty bitmap / RCT query), or null to compare
   * every block by digest. Omitted: digest comparison for every disk.
   */
  readonly changed?: ReadonlyArray<readonly ChangedExtent[] | null>;
  readonly consistency?: 'application' | 'crash' | 'offline';
  /** Every unmet online-backup requirement that made the point less than application-consistent. */
  readonly reasons?: readonly string[];
  /** Offline point: how long the VM was paused (ms). */
  readonly pauseMs?: number;
  /** Online point: how long the guest was frozen (ms). */
  readonly freezeMs?: number;
  /**
   * Per disk: how its changes were found, as the caller knows it (e.g. `{method: 'digest', reason: 'bitmap
   * missing'}` when a dirty bitmap was unusable). Omitted or null: 'bitmap' with a change list, else
   * 'digest'. A disk that gets a new initial copy (first point, added, resized) is recorded 'initial' whatever
   * is given.
   */
  readonly tracking?: ReadonlyArray<DiskTracking | null>;
  /** Per disk: the change reference for the next backup (stored in the point's disk record), or null. */
  readonly changeRefs?: ReadonlyArray<DiskChangeRef | null>;
  /** The VM's configuration files at the point (issue 14), stored with it (config-files.ts). */
  readonly configuration?: VmConfiguration;
  /** The source's change-tracking reference for this point (stored, returned by points). */
  readonly changeRef?: string | null;
  /** Block size for a data source seen for the first time (default 64 KiB); ignored afterwards. */
  readonly blockSize?: number;
  /**
   * Compute the new point against this point's disk `disk` instead of the source's newest point (a kept
   * instant recovery: the one image is that disk after the writes made to its export, and `changed` lists
   * the ranges written). The new point has the base point's disks, with that one replaced; its parent is
   * the base point and it is marked `madeFrom: { instantRecovery: <base point id> }`.
   */
  readonly base?: { readonly point: string; readonly disk: number };
}

export type CheckOptions = Omit<BackupOptions, 'changed'>;

/** A recovery point as the CLI prints it with --json and the API returns it. */
export interface PointSummary extends PointStats {
  /** Absent on a readable point (see DamagedPointSummary). */
  readonly damaged?: undefined;
  readonly id: string;
  readonly source: string;
  readonly time: string;
  readonly kind: 'initial' | 'incremental' | 'express-full' | 'consistency-check';
  readonly consistency: 'application' | 'crash' | 'offline';
  /** Unmet online-backup requirements (empty: none, or not recorded in an older point). */
  readonly reasons: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  /** Bytes that crossed a process or network boundary (0 for local files and points that predate it). */
  readonly bytesSent: number;
  readonly changeRef: string | null;
  readonly parent: string | null;
  /** Set on a point saved from a writable export (`export --writable --keep`): the point it was served from. */
  readonly madeFrom?: { readonly instantRecovery: string };
  readonly blockSize: number;
  /** The VM's configuration kept with the point (its description: format, version, files), when there is one. */
  readonly configuration?: VmConfigDescription;
  /** Per disk; `stats` is the disk's share of the figures (absent for points written before it was recorded). */
  readonly disks: ReadonlyArray<{
    index: number; name: string; format: string; virtualSize: number; stats?: DiskStats; initial?: true; reason?: string; tracking?: DiskTracking; changeRef?: DiskChangeRef;
  }>;
}

/** A point whose manifest cannot be read, as listed: its id, the time its id encodes, and the coded error. */
export interface DamagedPointSummary {
  readonly damaged: true;
  readonly id: string;
  readonly source: string;
  readonly time: string;
  readonly error: WireError;
}

export type PointListing = PointSummary | DamagedPointSummary;

export interface BackupResult extends PointSummary {
  /** Blocks known bad (from verify) that this run rewrote. */
  readonly blocksRepaired: number;
}

export interface RestoreOptions extends CommonOptions {
  readonly source: string;
  /** Point id (or unique prefix), "latest" or undefined for the newest. */
  readonly point?: string;
  /** Disk index in the point (default 0). */
  readonly disk?: number;
  readonly out: string;
  /** Output format; default: the source disk's format. */
  readonly format?: 'vhd' | 'vhdx' | 'raw';
  /** Replace an existing output file. */
  readonly force?: boolean;
  /** Roots `out` must lie under, checked when the file is written (formats/write.ts `confine`). */
  readonly confine?: readonly string[];
}

export interface RestoreResult {
  readonly source: string;
  readonly point: string;
  readonly disk: number;
  readonly out: string;
  readonly format: string;
  readonly virtualSize: number;
  readonly bytesWritten: number;
  readonly durationMs: number;
}
