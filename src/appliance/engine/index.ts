/**
 * The narrow interface between the appliance's jobs and the sync engine (src/sync/). Jobs depend on this
 * module only. The folder:
 * - `index.ts` (this file): the interface, its contract and its types;
 * - `sync.ts`: SyncEngine, src/sync's programmatic API adapted to it;
 * - `protocol.ts`: the typed operations the engine thread runs (adding one: see there);
 * - `thread.ts` / `threaded.ts`: the engine thread and ThreadedEngine, the main-thread side `serve` uses;
 * - `load.ts`: the engine `serve` loads; `unavailable.ts`: the Appliance's default when it is given none.
 *
 * Contract for every operation:
 * - it honours `ctx.signal`: an aborted signal makes it reject with SV_ERR_CORE_CANCELLED (or the abort
 *   reason) promptly, leaving nothing half-committed (the store's own commit protocol guarantees that);
 * - it reports progress through `ctx.onProgress` (bytes done / total; total may grow);
 * - it rejects with catalogued SvErrors (their code becomes the job's failure reason);
 * - its result is JSON-able (it is stored in the job record).
 */
import type { AgentRpc } from '../../agent/rpc.js';
import type { DiskSourceRef } from '../../sources/types.js';
import type { Consistency, DiskChangeRef, DiskTracking } from '../../../storage/manifest.js';
import type { ImageExport } from '../../sync/image-stream.js';
import type { VmConfiguration } from '../../hypervisor/config.js';

export type { ImageExport };

export interface EngineContext {
  readonly signal: AbortSignal;
  onProgress(done: number, total: number): void;
  log(message: string): void;
}

/** One disk of a job: its name in the data source and where to read it (serialisable: it crosses the engine thread). */
export interface EngineDiskRef {
  /** Disk name inside the data source (e.g. "disk0" or the file's base name). */
  readonly name: string;
  /** A file (with the appliance's source roots and forced format), an NBD export, an agent's disk. */
  readonly source: DiskSourceRef;
  /** Changed extents [offset, length] since the previous point (a validated dirty bitmap / RCT); absent: compare digests. */
  readonly changed?: ReadonlyArray<readonly [number, number]>;
  /** How the changes were found, as the caller knows it (e.g. digest, reason "bitmap missing"); see sync BackupOptions.tracking. */
  readonly tracking?: DiskTracking;
  /** The change reference for the next backup of this disk (stored with the point). */
  readonly changeRef?: DiskChangeRef;
}

/** What a backup records about how its point in time was taken (issue 10 §4); absent: a crash-consistent local copy. */
export interface PointFields {
  /** The VM's configuration files at the point (a view's configuration()), kept with the point. */
  readonly configuration?: VmConfiguration;
  readonly consistency?: Consistency;
  readonly reasons?: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
}

/** Bytes of one backup. `disk` is a disk name, or "all" when the engine reports the point's totals only. */
export interface DiskBackupFigures {
  readonly disk: string;
  readonly bytesRead: number;
  readonly bytesChanged: number;
  readonly bytesWritten: number;
  /** Bytes that crossed a process or network boundary to read the disk (0 for local files). */
  readonly bytesSent: number;
  readonly tracking?: DiskTracking;
  readonly compressionRatio?: number;
  readonly dedupRatio?: number;
}

export interface BackupOutcome {
  readonly pointId: string;
  /** ISO time of the recovery point. */
  readonly time: string;
  readonly consistency: Consistency;
  readonly reasons: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  readonly disks: readonly DiskBackupFigures[];
  readonly raw: Record<string, unknown>;
}

export interface EnginePoint {
  readonly id: string;
  readonly source: string;
  readonly time: string;
  /** How the point was taken (absent on a damaged point). */
  readonly consistency?: Consistency;
  readonly reasons?: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  readonly bytesSent?: number;
  /** `initial`/`reason`: the disk got a new initial copy in this point (added to the source, or resized). */
  readonly disks: readonly {
    readonly name: string; readonly virtualSize?: number; readonly initial?: true; readonly reason?: string; readonly tracking?: DiskTracking; readonly bytesSent?: number;
  }[];
  readonly raw: Record<string, unknown>;
  /** Set when the point's manifest cannot be read (no disks then): its coded error. */
  readonly damaged?: { readonly code: string; readonly message: string };
}

export interface VerifyOutcome {
  readonly badBlocks: number;
  readonly raw: Record<string, unknown>;
}

export interface StoreStats {
  readonly sizeBytes?: number;
  readonly blocks?: number;
  readonly oldestUnverifiedAgeSeconds?: number;
  /** Files in the store's quarantine folder (damaged or foreign files moved aside). */
  readonly quarantinedFiles?: number;
}

export type ImageFormat = 'raw' | 'vhd' | 'vhdx';

/** Item-level restore: files and folders of one volume of the disk, into the target folder (src/files/extract.ts). */
export interface ItemsRequest {
  /** Volume (partition) index; absent: the only or largest readable volume. */
  readonly volume?: number;
  readonly paths: readonly string[];
  /** Replace files that exist in the target. */
  readonly overwrite?: boolean;
}

/**
 * What `restore` writes: one disk (by its index in the point) or every disk (into a folder) of a point; with
 * `items` (and `disk`), files and folders of that disk into the folder `target`.
 */
export interface RestoreRequest {
  readonly source: string;
  readonly pointId: string;
  readonly disk?: number;
  readonly target: string;
  readonly format: ImageFormat;
  readonly roots?: readonly string[];
  readonly items?: ItemsRequest;
}

export interface RestoreOutcome {
  readonly bytesWritten: number;
  readonly files: string[];
  readonly raw: Record<string, unknown>;
}

export interface PruneOutcome {
  readonly removed: string[];
  readonly raw: Record<string, unknown>;
}

export interface Engine {
  /** False when this build has no engine: every operation rejects with SV_ERR_APPLIANCE_ENGINE_UNAVAILABLE. */
  readonly available: boolean;
  /**
   * Back up the given disks of a source as one new recovery point. A `file` reference with `roots`: the image
   * (and every differencing parent) must lie under them when it is opened, else SV_ERR_API_PATH_NOT_ALLOWED.
   * References of a kind with no opener in the engine's thread fail with SV_ERR_SOURCE_NO_OPENER.
   */
  backup(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext, point?: PointFields): Promise<BackupOutcome>;
  /** Recovery points of one source (all when undefined), oldest first. */
  listPoints(source: string | undefined): Promise<EnginePoint[]>;
  /**
   * Write one disk (by its index in the point) or every disk (into a folder) of a point to `target`. With
   * `roots`, everything is written through util/confined.ts: a target that resolves outside them when the
   * files are opened fails with SV_ERR_API_PATH_NOT_ALLOWED and leaves nothing behind.
   */
  restore(req: RestoreRequest, ctx: EngineContext): Promise<RestoreOutcome>;
  /**
   * A disk image of a point in the given format, streamed from the store (no temporary file): its exact length
   * first, then any byte range of it as a stream that reads blocks as the consumer pulls them.
   */
  exportImage(req: { source: string; pointId: string; disk: number; format: ImageFormat }, signal: AbortSignal): Promise<ImageExport>;
  /** The VM configuration files kept with a point (SV_ERR_SYNC_NO_CONFIGURATION when it has none). */
  readConfiguration(req: { source: string; pointId: string }): Promise<VmConfiguration>;
  /** Consistency check of a source: compare every block of the live disks with the replica, repair, new point. */
  check(source: string, disks: readonly EngineDiskRef[], ctx: EngineContext): Promise<BackupOutcome>;
  /** Re-read and re-hash the store's blocks. */
  verify(ctx: EngineContext): Promise<VerifyOutcome>;
  /** Remove the given recovery points of a source. */
  prune(source: string, pointIds: readonly string[], ctx: EngineContext): Promise<PruneOutcome>;
  /** Remove blocks no recovery point refers to. */
  /** `full`: rebuild gc's reference table from every point instead of updating it. */
  gc(ctx: EngineContext, full?: boolean): Promise<Record<string, unknown>>;
  /** Rebuild the index from the packs, quarantine unreadable files, report per point (`dryRun`: change nothing). */
  repair(ctx: EngineContext, dryRun?: boolean): Promise<Record<string, unknown>>;
  /** Store size and block count for /metrics (cheap; may be cached by the engine). */
  stats(): Promise<StoreStats>;
  /** The worker pool the engine's jobs use, when it is not this thread's (src/pool) one. */
  poolStats?(): { utilization: number; queueDepth: number; threads: number };
  /**
   * The appliance's AgentRpc: from now on `agent` disk sources open through it (in the engine's own thread,
   * through a relay to the main thread: src/sources/agent-relay.ts). Called once by the Appliance.
   */
  attachAgents?(rpc: AgentRpc): void;
  /** Release threads and files; called by Appliance.stop() after the last job. */
  close?(): Promise<void>;
  /** Threads given up because an operation in them stayed blocked in a system call after an abort. */
  abandoned?(): number;
}
