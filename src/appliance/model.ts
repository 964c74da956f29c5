/**
 * The appliance's domain types: protection groups, data sources, jobs, API tokens, recovery point notes.
 * These are what the state files hold and what the API returns (the API's JSON schemas mirror them in
 * src/api/schemas.ts). Times are ISO-8601 strings in UTC.
 */
import type { WireError } from '../errors/index.js';
import type { DiskFormat } from '../formats/types.js';

/**
 * `agent` is outside the viewer < operator < admin rank: an agent credential (bound to one agent id, made by
 * pairing) may call only routes that declare role `agent`, and no route of the others.
 */
export type Role = 'admin' | 'operator' | 'viewer' | 'agent';
/** Roles an admin can give a token (agent credentials come from pairing only). */
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];

/** A disk of a data source: its name in the source, its image (file or block device), how to read it. */
export interface SourceDisk {
  name: string;
  path: string;
  /** Read the image as this format; absent: its name and content decide (a raw disk that holds VHD/VHDX traces needs 'raw'). */
  format?: DiskFormat;
}

/** A VM (or any machine) and the disks of it the appliance may protect. */
export interface DataSource {
  id: string;
  /** VM name; unique; also the name of its series in the store. */
  name: string;
  /** Host the disks are read from ("local" for local paths, SMB shares and cluster shared volumes). */
  host: string;
  /** Disk paths (a path source); empty for a VM source (its disks come from the VM at each backup). */
  disks: SourceDisk[];
  /** A VM protected through its host agent instead of disk paths (`sources add --vm`). */
  vm?: VmSourceSpec;
  createdAt: string;
}

/** The VM of a VM source: found by id in the inventory at each job (it may move between hosts). */
export interface VmSourceSpec {
  /** Stable VM id (QEMU: its UUID). */
  id: string;
  /** Its name when the source was added (for display; jobs go by id). */
  name: string;
  /** Online (application-consistent) backups allowed when the VM meets the requirements (default true). */
  online: boolean;
  /**
   * The agent that reported the VM when the source was added, and its cluster. Jobs go to the agent that
   * reports the VM now only if it is that agent or one of the same (non-null) cluster (a VM migrates within its
   * cluster): another agent claiming the VM's id cannot receive its jobs or send blocks for it.
   */
  agentId?: string;
  cluster?: string | null;
  /** Set when the source was added by an admin's forced takeover: the appliance it was taken from, and when. */
  takenOver?: { from: { id: string; name: string }; at: string };
}

export interface RetentionPolicy {
  /** Scheduled recovery points younger than this are kept. */
  days: number;
  /** At most this many scheduled recovery points are kept (the newest). */
  maxCount: number;
}

/** DPM's unit of policy: which sources, how often, how long. */
export interface ProtectionGroup {
  id: string;
  name: string;
  /** Data source ids. */
  members: string[];
  /** Synchronisation frequency in minutes (15..1440): a sync backup every this many minutes. */
  syncFrequencyMinutes: number;
  /** Times of day (UTC, "HH:MM") at which a scheduled recovery point is made. At least one. */
  recoveryPointTimes: string[];
  retention: RetentionPolicy;
  /** Times of day (UTC, "HH:MM") at which each member gets a consistency check; empty = none. */
  consistencyCheckTimes: string[];
  /** Disk names to protect; empty = every disk of each member. */
  disks: string[];
  enabled: boolean;
  createdAt: string;
}

export type JobKind = 'backup' | 'check' | 'verify' | 'prune' | 'gc' | 'restore' | 'repair';
export const JOB_KINDS: readonly JobKind[] = ['backup', 'check', 'verify', 'prune', 'gc', 'restore', 'repair'];
/** Store-wide jobs that run alone (no other job starts while one runs; a queued one holds back later ones). */
export const EXCLUSIVE_KINDS: ReadonlySet<JobKind> = new Set(['gc', 'repair']);
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';
export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'];
export const FINAL_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

/** Why a job was made. */
export type JobTrigger = 'api' | 'sync' | 'recovery-point' | 'consistency-check' | 'retention' | 'retry' | 'maintenance';

export interface JobProgress {
  bytesDone: number;
  bytesTotal: number;
  /** Bytes per second over the job so far. */
  rate: number;
  /** Seconds left at that rate; null when unknown. */
  etaSeconds: number | null;
}

export interface JobLogLine {
  time: string;
  level: 'info' | 'warn' | 'error';
  message: string;
}

/** Parameters of a job; which fields are used depends on the kind. */
export interface JobParams {
  /** backup: recovery point tag ("sync" or "scheduled"). */
  tag?: 'sync' | 'scheduled' | 'manual';
  /** restore: the recovery point. */
  pointId?: string;
  /** restore: the disk (absent = the whole VM). */
  disk?: string;
  /** restore: target folder (whole VM) or file (one disk). */
  target?: string;
  /** restore: write the disk back to the VM's host through its agent (VM sources; `target` unused). */
  toHost?: boolean;
  /** restore with toHost: the whole VM (configuration + every disk) written on the host and imported there. */
  import?: boolean;
  /** restore: output format. */
  format?: 'raw' | 'vhd' | 'vhdx';
  /** restore of items: volume paths of files and folders (then `target` is a folder and `disk` is required). */
  items?: string[];
  /** restore of items: the volume (partition index; absent: the only or largest readable one). */
  volume?: number;
  /** restore of items: replace existing files in the target. */
  overwrite?: boolean;
  /** prune: recovery point ids to remove. */
  pointIds?: string[];
  /** gc: rebuild the reference table from every point (a full mark) instead of updating it. */
  full?: boolean;
  /** repair: report what a repair would do; change nothing. */
  dryRun?: boolean;
}

export interface Job {
  id: string;
  kind: JobKind;
  state: JobState;
  trigger: JobTrigger;
  /** Data source the job works on (absent for store-wide jobs: verify, gc). */
  sourceId?: string;
  groupId?: string;
  params: JobParams;
  /** 1 for the first run; a retry after an interruption is a new job with attempt + 1 and `retryOf`. */
  attempt: number;
  retryOf?: string;
  /** Error code that ended the attempt this one retries (a retry ending with the same code is not retried). */
  retryCode?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  progress: JobProgress;
  result?: Record<string, unknown>;
  error?: WireError;
  log: JobLogLine[];
}

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  /** sha256 of the token text, hex. The token itself is shown once, at creation, and never stored. */
  sha256: string;
  createdAt: string;
  lastUsedAt?: string;
  /** Role `agent`: the agent this credential belongs to. */
  agentId?: string;
}

/** What the appliance remembers about a recovery point beyond the store: its tag (sync/scheduled). */
export interface PointNote {
  pointId: string;
  sourceId: string;
  tag: 'sync' | 'scheduled' | 'manual';
  time: string;
  /** The source's disk names, in the order the point holds the disks. */
  disks?: string[];
}

/** What the appliance remembers about the store. */
export interface StoreNote {
  /** When the last verify of the whole store finished (every block then present was checked). */
  lastFullVerifyAt?: string;
}
