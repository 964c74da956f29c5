/**
 * The hypervisor driver: everything the host agent needs from a hypervisor, and nothing else. The QEMU/KVM
 * driver (src/hypervisor/qemu/) implements it over QMP; the Hyper-V driver (a later issue) must implement it
 * over CIM/PowerShell WITHOUT changing this file (production checkpoints = createView; RCT reference points =
 * ChangeReference; the frozen parent VHDX after a checkpoint = a `file` DiskSourceRef read by our own reader).
 *
 * CONTRACT
 * - `listVms()` returns every VM the driver manages on this host, with a stable `id` (QEMU: the UUID from
 *   query-uuid; Hyper-V: the VM id). A VM that cannot be inspected is listed with `state: 'unknown'` and an
 *   `error`, never dropped silently.
 * - `checkOnline(vm, opts)` returns `{possible, unmet}`: `unmet` holds one reason per requirement not met (the
 *   reasons in ONLINE_REQUIREMENTS), empty iff `possible`.
 * - `createView(vmId, req)` takes ONE point in time of ALL the VM's disks:
 *     * online (guest quiesced, VM keeps running) when req.mode is 'online' or 'auto' and checkOnline passes;
 *       'online' with an unmet requirement throws SV_ERR_HYPERVISOR_ONLINE_NOT_POSSIBLE;
 *     * otherwise offline (VM paused, point taken, VM resumed: `pauseMs` measured), or, for a VM that is not
 *       running, its disk files as they are (consistency 'offline', pauseMs 0).
 *   The guest is never left frozen and the VM never left paused, whatever fails (thaw/resume in `finally`,
 *   with a bound on the frozen time). On failure nothing the driver created stays behind.
 * - A view holds resources (exports, scratch overlays, checkpoints) until `release()`. Exactly one of
 *   `commit()` / `abort()` is called before `release()` when a point was attempted; `release()` alone equals
 *   `abort()` + release. All three are idempotent.
 *     * `commit()`: the point is safe on the appliance. Advance change tracking (QEMU: delete the frozen
 *       bitmap; Hyper-V: convert the checkpoint to a reference point and destroy the previous one).
 *     * `abort()`: roll tracking back so that the next view still reports every change since the last
 *       committed point (QEMU: merge the frozen bitmap back; Hyper-V: remove the checkpoint, keep the old
 *       reference point).
 * - `changes(disk, previous)` gives the disk's changed extents since `previous` (the ChangeReference stored
 *   with the disk in the appliance's last point), or `{usable: false, reason}`: the caller then compares
 *   digests (express full at the source). It never returns extents it cannot validate: the reference must be
 *   the one it handed out, still present, consistent (not left inconsistent by an unclean shutdown), recording
 *   since then, on a disk of the same identity and size.
 * - `cleanupLeftovers()` removes what an earlier, killed run of this driver left (exports, jobs, scratch
 *   files, temporary bitmaps/checkpoints) — only what it owns, recognised by its name prefix — and reports it.
 * - `view.configuration()` gives the VM's configuration files as of the point (config.ts: Hyper-V's exported
 *   .vmcx/.vmrs/.vmgs or .xml; QEMU's machine description from QMP), checked against config.ts's limits. A view
 *   that cannot describe its VM (a QEMU that is not running) throws SV_ERR_HYPERVISOR_NO_CONFIGURATION: the
 *   point is then kept without one. Asked at most once per view; it never changes the VM.
 * - `importVm(req)` registers a VM on this host from configuration files and restored disks that lie in
 *   `req.folder` (Hyper-V: Import-VM -Copy -GenerateNewId with the disks found there). A driver whose
 *   hypervisor has no import (QEMU: a VM is a process, its configuration a command line) throws
 *   SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED. The new VM is left stopped.
 *   WHY these two were added to this interface (issue 14 allowed it): a whole-VM restore needs the
 *   configuration taken at the same point in time as the disks (only the view knows that moment: a Hyper-V
 *   recovery checkpoint's own configuration), and an import that only the driver can do on its host.
 * - `vmDisks(vmId)` (optional) gives the id and disks of one VM as `listVms()` would list them, found without
 *   listing every VM (QEMU: one inspection of the VM's own QMP socket), or undefined when that quick lookup
 *   cannot tell (the caller then lists every VM). WHY it was added: the agent checks a VM's ownership record
 *   (next to its disks) before every view; a listing per view inspected every VM of the host and probed every
 *   guest agent, so four views at once on one host made sixteen inspections (docs/BENCHMARKS.md, session 11).
 * - Errors are coded: SV_ERR_HYPERVISOR_* (VM gone, QEMU crashed, online not possible, …) or the transport's.
 */
import type { DiskSourceRef } from '../sources/types.js';
import type { VmConfigDescription, VmConfiguration } from './config.js';

export type VmState = 'running' | 'paused' | 'stopped' | 'migrating' | 'crashed' | 'unknown';
export type Consistency = 'application' | 'crash' | 'offline';
export type TrackingMethod = 'bitmap' | 'digest' | 'initial';

/** The online-backup requirements (DPM's list, mapped). Each unmet one is reported by its code. */
export const ONLINE_REQUIREMENTS = {
  'guest-agent': 'a guest agent is installed and answering (DPM: the backup integration service)',
  'guest-freeze': 'the guest supports freezing its file systems (DPM: the guest supports VSS)',
  'vm-running': 'the VM is running',
  'disks-snapshottable': 'every disk can be snapshotted',
  'online-allowed': 'online backup is allowed for this VM (per-source option)',
  'share-permissions': 'the host\'s machine account has full rights on the SMB share and folder of every disk on a file server (DPM: share and folder permissions)',
} as const;
export type OnlineRequirement = keyof typeof ONLINE_REQUIREMENTS;

export interface UnmetRequirement {
  readonly requirement: OnlineRequirement;
  /** Human-readable detail, e.g. "disk scsi0-hd1 is a pass-through host block device". */
  readonly reason: string;
  /** share-permissions: the share (`//server[:port]/name`), the folder inside it and the missing right. */
  readonly share?: string;
  readonly folder?: string;
  readonly right?: string;
}

export interface OnlineCheck {
  readonly possible: boolean;
  readonly unmet: readonly UnmetRequirement[];
}

/** What a change reference names: handed out by a view's disk, stored by the appliance with the point. */
export interface ChangeReference {
  /** Driver-specific id (QEMU: the bitmap name; Hyper-V: the RCT id). */
  readonly id: string;
  /** Identity of the disk it belongs to (QEMU: node/file identity; Hyper-V: VHDX virtual disk id). */
  readonly diskIdentity: string;
  readonly virtualSize: number;
}

export interface TrackingState {
  /** 'none' when the disk has no tracking yet (first backup), 'recording', or why it is unusable. */
  readonly state: 'none' | 'recording' | 'inconsistent' | 'disabled' | 'unsupported';
  readonly reason?: string;
  /** Persistent across hypervisor restarts (qcow2 bitmaps; RCT). */
  readonly persistent: boolean;
}

export interface VmDisk {
  /** Stable key of the disk within the VM (QEMU: the device's qdev id; Hyper-V: controller location). */
  readonly key: string;
  readonly device: string;
  /** Image format as the hypervisor opens it ('qcow2', 'raw', 'vhdx', 'host_device', …). */
  readonly format: string;
  readonly virtualSize: number;
  /** Backing file path on the host (for display and restore-next-to-the-VM). */
  readonly path: string;
  readonly identity: string;
  readonly snapshottable: boolean;
  /** Why not, when !snapshottable. */
  readonly reason?: string;
  readonly tracking: TrackingState;
}

/**
 * This host's side of a live migration of the VM: 'incoming' (the destination, waiting for or receiving the
 * VM: it does not run here yet), 'outgoing' (the source while the migration runs: the VM still runs here),
 * 'completed' (the source after the switch-over: the VM runs on the destination now).
 */
export type MigrationRole = 'incoming' | 'outgoing' | 'completed';

/**
 * A replica VM (src/hypervisor/replica/): not running on this host, its disks kept up to date by replication
 * from a primary. 'replicating': the primary's mirror is ready and applies every write (the replica is
 * crash-consistent at any instant); 'resynchronising': the mirror is copying the disk (not ready: no point in
 * time); 'unknown': the primary or its job does not answer. Backups run only while 'replicating'.
 */
export type ReplicaState = 'replicating' | 'resynchronising' | 'unknown';
export interface ReplicaInfo {
  readonly state: ReplicaState;
  /** Where the replication comes from, as the administrator declared it. */
  readonly primary?: { readonly qmp: string; readonly job: string };
  /** Why the state is what it is (e.g. "mirror job repl0 copied 12 of 64 MiB"). */
  readonly reason?: string;
}

export interface VmInfo {
  readonly id: string;
  readonly name: string;
  readonly state: VmState;
  /** Absent when no migration of the VM involves this host. */
  readonly migration?: MigrationRole;
  /** Present for a replica VM (declared by the administrator), absent otherwise. */
  readonly replica?: ReplicaInfo;
  readonly disks: readonly VmDisk[];
  readonly guestAgent: { readonly present: boolean; readonly answering: boolean; readonly version?: string };
  /** Why the VM could not be inspected (state 'unknown'). */
  readonly error?: { readonly code: string; readonly message: string };
}

export interface ViewRequest {
  readonly mode: 'auto' | 'online' | 'offline';
  /** Per-source option: online backup allowed (default true). */
  readonly allowOnline?: boolean;
  /** Longest the guest may stay frozen (default 10 s); the thaw is forced after it. */
  readonly freezeTimeoutMs?: number;
  /**
   * The store's block size: granularity of the change tracking started by this view (QEMU: the new dirty
   * bitmap's granularity; default 64 KiB). A power of two.
   */
  readonly blockSize?: number;
  readonly signal?: AbortSignal;
}

export interface ViewDisk {
  readonly index: number;
  readonly key: string;
  readonly name: string;
  readonly virtualSize: number;
  readonly identity: string;
  /** How to read this disk's point-in-time content (opened with src/sources/registry.ts). */
  readonly source: DiskSourceRef;
  /** The reference the NEXT backup passes to changes(): valid once commit() ran. Null: no tracking possible. */
  readonly nextReference: ChangeReference | null;
}

export type ChangeAnswer =
  | { readonly usable: true; readonly extents: ReadonlyArray<readonly [offset: number, length: number]> }
  | { readonly usable: false; readonly reason: string };

export interface PointInTimeView {
  readonly vmId: string;
  readonly consistency: Consistency;
  /** Every unmet requirement that made the point less than application-consistent. */
  readonly reasons: readonly string[];
  /** Offline: how long the VM was paused. */
  readonly pauseMs?: number;
  /** Online: how long the guest was frozen. */
  readonly freezeMs?: number;
  readonly disks: readonly ViewDisk[];
  changes(disk: number, previous: ChangeReference | null): Promise<ChangeAnswer>;
  /** The VM's configuration files as of this point (see the contract); SV_ERR_HYPERVISOR_NO_CONFIGURATION when it has none. */
  configuration(): Promise<VmConfiguration>;
  commit(): Promise<void>;
  abort(): Promise<void>;
  release(): Promise<void>;
}

/** What importVm needs: every file lies in `folder` (the configuration's files by their names, the disks by `disks`). */
export interface ImportRequest {
  readonly folder: string;
  readonly configuration: VmConfigDescription;
  /** File names (in `folder`) of the restored disks, in the point's disk order. */
  readonly disks: readonly string[];
}

export interface ImportResult {
  readonly vmId: string;
  readonly name: string;
}

export interface CleanupReport {
  readonly removed: readonly string[];
  readonly errors: ReadonlyArray<{ readonly what: string; readonly code: string; readonly message: string }>;
}

export interface HypervisorDriver {
  /** 'none': an agent that runs no hypervisor (the file server's agent, src/smb/). */
  readonly hypervisor: { readonly name: 'qemu' | 'hyper-v' | 'none'; readonly version: string };
  listVms(): Promise<VmInfo[]>;
  vmDisks?(vmId: string): Promise<Pick<VmInfo, 'id' | 'disks'> | undefined>;
  checkOnline(vmId: string, opts?: { allowOnline?: boolean }): Promise<OnlineCheck>;
  createView(vmId: string, req: ViewRequest): Promise<PointInTimeView>;
  importVm(req: ImportRequest): Promise<ImportResult>;
  cleanupLeftovers(): Promise<CleanupReport>;
  close(): Promise<void>;
}
