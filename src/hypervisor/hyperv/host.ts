/**
 * The Hyper-V host layer: the thin, replaceable interface between the Hyper-V driver's logic (driver.ts,
 * view.ts) and a Hyper-V host. Two implementations:
 *   - `PowerShellHyperVHost` (powershell.ts): the real one, `powershell.exe -NoProfile -NonInteractive -File`
 *     over the scripts in hyperv-scripts/ (WMI/CIM namespace root\virtualization\v2). NOT run against a real
 *     Hyper-V host by this project's tests (README "Hyper-V").
 *   - `SimulatedHyperVHost` (simulated-host.ts): a SIMULATION over real files in a folder (VHDX disks written
 *     and read with the project's own VHDX code), used by the tests and by `shadowvault agent --driver hyperv-sim`.
 *
 * CONTRACT (each method is one documented Hyper-V operation; the script or simulation that implements it is
 * named beside it):
 * - Ids are Hyper-V's: a VM id is Msvm_ComputerSystem.Name (a GUID); a checkpoint id is
 *   Msvm_VirtualSystemSettingData.InstanceID ("Microsoft:<guid>"); a reference point id is
 *   Msvm_VirtualSystemReferencePoint.InstanceID; an RCT id is one entry of its ResilientChangeTrackingIdentifiers.
 * - Every method throws a coded error: SV_ERR_HYPERVISOR_VM_NOT_FOUND for an unknown VM,
 *   SV_ERR_HYPERV_RCT_INVALID when GetVirtualDiskChanges refuses a LimitId (the RCT history no longer has it),
 *   SV_ERR_HYPERV_JOB_FAILED when a CIM method or its job ends in an error (ReturnValue / ErrorCode kept in
 *   details), SV_ERR_HYPERV_BAD_OUTPUT for output that is not the documented shape, SV_ERR_HYPERV_HOST for the
 *   host layer itself failing (powershell.exe missing, the simulation's folder damaged).
 * - Nothing is cached: every call asks the host again.
 * - Methods that change the host (checkpoint, convert, destroy, save, resume, merge) are each ONE step; the
 *   driver orders them and records what it owns by the `sv-` name prefix of its checkpoints.
 */

/** Msvm_ComputerSystem.EnabledState, mapped: 2 Running, 3 Off, 6 Saved (Enabled but Offline), 9 Paused, 32776/32777 migrating. */
export type HvVmState = 'Running' | 'Off' | 'Saved' | 'Paused' | 'Migrating' | 'Other';

/** Msvm_StorageAllocationSettingData + Get-VMHardDiskDrive, for one virtual hard disk of a VM. */
export interface HvDisk {
  /** "SCSI" or "IDE" (Get-VMHardDiskDrive ControllerType). DPM needs SCSI for online backups of generation 1 VMs. */
  readonly controllerType: 'SCSI' | 'IDE';
  readonly controllerNumber: number;
  readonly controllerLocation: number;
  /** The VM's current file for this disk (the newest .avhdx while a checkpoint exists). */
  readonly path: string;
  /** The base disk (end of the differencing chain the VM was configured with, before any checkpoint). */
  readonly basePath: string;
  /** 'VHDX' | 'VHD' (Get-VHD VhdFormat) or 'PassThrough' for a physical disk. */
  readonly format: 'VHDX' | 'VHD' | 'PassThrough';
  /** Get-VHD Size (virtual size in bytes). */
  readonly virtualSize: number;
  /** Get-VHD DiskIdentifier (the VHDX Page83 data; stays the same through checkpoints and migrations). */
  readonly diskIdentifier: string;
}

/** Get-VMIntegrationService "Backup (volume shadow copy)" / Msvm_VssComponent, plus what the guest told it. */
export interface HvBackupService {
  readonly enabled: boolean;
  /** PrimaryStatusDescription "OK" (the guest's VSS integration component answers). */
  readonly responding: boolean;
  /**
   * Why the guest cannot take a VSS snapshot, as the integration service reports it (empty when it can):
   * dynamic disks, a non-NTFS volume, a shadow storage assignment on another volume, no VSS in the guest.
   */
  readonly guestProblems: readonly string[];
}

export interface HvVm {
  /** Msvm_ComputerSystem.Name (GUID). */
  readonly id: string;
  /** Msvm_ComputerSystem.ElementName. */
  readonly name: string;
  readonly state: HvVmState;
  /** Msvm_VirtualSystemSettingData.VirtualSystemSubType: 1 or 2. */
  readonly generation: 1 | 2;
  /** Msvm_VirtualSystemSettingData.Version, e.g. "9.0" (RCT needs >= 6.2). */
  readonly configurationVersion: string;
  readonly backup: HvBackupService;
  readonly disks: readonly HvDisk[];
  /** Clustered VM: Get-ClusterGroup OwnerNode and State; null when the VM is not clustered. */
  readonly cluster: { readonly ownerNode: string; readonly groupState: 'Online' | 'Offline' | 'Failed' | 'PartialOnline' | 'Pending' | 'Unknown' } | null;
  /** Where the VM's files live: a local volume, a Cluster Shared Volume, or an SMB 3 share. */
  readonly storage: 'Local' | 'CSV' | 'SMB';
  /** Msvm_VirtualSystemSettingData.ConfigurationDataRoot (folder of the .vmcx/.vmrs/.vmgs or 2012 R2 .xml). */
  readonly configurationPath: string;
}

/** Msvm_VirtualSystemSettingData of a snapshot (VirtualSystemType "Microsoft:Hyper-V:Snapshot:Recovery"). */
export interface HvCheckpoint {
  readonly id: string;
  readonly vmId: string;
  /** ElementName; the driver's own start with `sv-`. */
  readonly name: string;
  readonly kind: 'Recovery' | 'Standard';
  /** CreationTime, ISO 8601. */
  readonly created: string;
  /** Per disk (by diskIdentifier): the read-only parent file the checkpoint froze. */
  readonly frozen: ReadonlyArray<{ readonly diskIdentifier: string; readonly path: string }>;
}

/** Msvm_VirtualSystemReferencePoint (its RCT ids exist from ConvertToReferencePoint on). */
export interface HvReferencePoint {
  readonly id: string;
  readonly vmId: string;
  /** ElementName (kept from the checkpoint it was converted from). */
  readonly name: string;
  readonly created: string;
  /** ResilientChangeTrackingIdentifiers paired with VirtualDiskIdentifiers (same order). */
  readonly rctIds: ReadonlyArray<{ readonly diskIdentifier: string; readonly rctId: string }>;
}

/** One GetVirtualDiskChanges answer: changed ranges inside [offset, offset+processed). */
export interface HvDiskChanges {
  readonly ranges: ReadonlyArray<readonly [offset: number, length: number]>;
  /** ProcessedByteLength: the caller asks again from offset+processed while it is short of the length asked. */
  readonly processedByteLength: number;
}

export interface CheckpointRequest {
  readonly name: string;
  /** Msvm_VirtualSystemSnapshotSettingData.ConsistencyLevel: 1 ApplicationConsistent (VSS in the guest), 2 CrashConsistent. */
  readonly consistencyLevel: 'ApplicationConsistent' | 'CrashConsistent';
  /** IgnoreNonSnapshottableDisks: pass-through disks are left out instead of failing the checkpoint. */
  readonly ignoreNonSnapshottableDisks: boolean;
}

export interface HyperVHost {
  /** 'hyperv (Windows Server …)' or 'hyperv-sim (simulation)'. */
  readonly description: string;
  /** vm-inventory.ps1: Get-VM / Msvm_ComputerSystem + settings, integration services, disks, cluster group. */
  listVms(): Promise<HvVm[]>;
  /** checkpoints.ps1: Msvm_VirtualSystemSettingData snapshots of the VM (Get-VMSnapshot), recovery ones included. */
  listCheckpoints(vmId: string): Promise<HvCheckpoint[]>;
  /** reference-points.ps1: Msvm_VirtualSystemReferencePoint associated with the VM. */
  listReferencePoints(vmId: string): Promise<HvReferencePoint[]>;
  /** create-checkpoint.ps1: Msvm_VirtualSystemSnapshotService.CreateSnapshot, SnapshotType 32768 (recovery). */
  createRecoveryCheckpoint(vmId: string, req: CheckpointRequest): Promise<HvCheckpoint>;
  /** convert-reference-point.ps1: Msvm_VirtualSystemSnapshotService.ConvertToReferencePoint (merges the .avhdx). */
  convertToReferencePoint(checkpointId: string): Promise<HvReferencePoint>;
  /** remove-checkpoint.ps1: Msvm_VirtualSystemSnapshotService.DestroySnapshot (merges the .avhdx back). */
  removeCheckpoint(checkpointId: string): Promise<void>;
  /** destroy-reference-point.ps1: Msvm_VirtualSystemReferencePointService.DestroyReferencePoint. */
  destroyReferencePoint(referencePointId: string): Promise<void>;
  /**
   * disk-changes.ps1: Msvm_ImageManagementService.GetVirtualDiskChanges on `path` (the frozen file of a
   * checkpoint) since `limitId`, for [offset, offset+length). One call; the caller loops on processedByteLength.
   */
  getVirtualDiskChanges(path: string, limitId: string, offset: number, length: number): Promise<HvDiskChanges>;
  /** vm-state.ps1: Msvm_ComputerSystem.RequestStateChange 6 (Save, DPM's offline backup). */
  saveVm(vmId: string): Promise<void>;
  /** vm-state.ps1: RequestStateChange 2 (start/resume from the saved state). */
  resumeVm(vmId: string): Promise<void>;
  /**
   * merge-setting.ps1: whether the host merges checkpoints (a failed backup product can leave automatic merging
   * disabled for a VM: Msvm_VirtualSystemSettingData.AutomaticSnapshotsEnabled / the merge flag). Set it back.
   */
  getMergeEnabled(vmId: string): Promise<boolean>;
  setMergeEnabled(vmId: string, enabled: boolean): Promise<void>;
  /**
   * export-config.ps1: Msvm_VirtualSystemManagementService.ExportSystemDefinition of the checkpoint's
   * configuration to `destDir` (configuration version >= 6: .vmcx/.vmrs/.vmgs; 2012 R2: .xml). Returns the
   * files written (absolute paths).
   */
  exportConfiguration(vmId: string, checkpointId: string, destDir: string): Promise<string[]>;
  /** import-vm.ps1: Import-VM -Path <config file> -Copy -VhdDestinationPath with the restored disks. Returns the new VM id. */
  importVm(configFile: string, vhdDestination: string): Promise<string>;
}
