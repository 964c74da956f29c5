# Shared helpers of the shadowvault Hyper-V host-layer scripts (dot-sourced by each script; never run alone).
# Windows PowerShell 5.1 (powershell.exe) on Windows Server 2016 or later, Hyper-V role and its PowerShell
# module installed, run as a member of "Hyper-V Administrators". WMI namespace root\virtualization\v2.
#
# Output contract (src/hypervisor/hyperv/records.ts): exactly one JSON document on stdout,
#   {"ok":true,"data":...}  or  {"ok":false,"error":{"kind":"vm-not-found|rct-invalid|job|host","message":"...",
#                                                   "returnValue":n,"errorCode":n}}
# Values from the caller arrive as typed parameters; they are compared with -eq, never pasted into a WQL
# filter or into script text.

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$SvNamespace = 'root\virtualization\v2'
# Msvm_ConcreteJob.JobState: 3 Starting, 4 Running, 7 Completed.
$SvJobRunning = @(3, 4)
$SvJobCompleted = 7

function Write-SvResult {
    param([AllowNull()] $Data)
    $envelope = [ordered]@{ ok = $true; data = $Data }
    [Console]::Out.Write((ConvertTo-Json -InputObject $envelope -Depth 8 -Compress))
    exit 0
}

function Write-SvFailure {
    param(
        [Parameter(Mandatory = $true)][ValidateSet('vm-not-found', 'rct-invalid', 'job', 'host')][string] $Kind,
        [Parameter(Mandatory = $true)][string] $Message,
        [long] $ReturnValue = -1,
        [long] $ErrorCode = -1
    )
    $err = [ordered]@{ kind = $Kind; message = $Message }
    if ($ReturnValue -ge 0) { $err.returnValue = $ReturnValue }
    if ($ErrorCode -ge 0) { $err.errorCode = $ErrorCode }
    [Console]::Out.Write((ConvertTo-Json -InputObject ([ordered]@{ ok = $false; error = $err }) -Depth 4 -Compress))
    exit 1
}

function Get-SvService {
    param([Parameter(Mandatory = $true)][string] $ClassName)
    $svc = Get-WmiObject -Namespace $SvNamespace -Class $ClassName
    if ($null -eq $svc) { Write-SvFailure -Kind 'host' -Message "no $ClassName in $SvNamespace (is the Hyper-V role installed?)" }
    return $svc
}

function Get-SvComputerSystem {
    param([Parameter(Mandatory = $true)][string] $VmId)
    $guid = [guid]::Empty
    if (-not [guid]::TryParse($VmId, [ref] $guid)) { Write-SvFailure -Kind 'vm-not-found' -Message "not a VM id: $VmId" }
    $vm = Get-WmiObject -Namespace $SvNamespace -Class Msvm_ComputerSystem | Where-Object { $_.Name -eq $guid.ToString() }
    if ($null -eq $vm) { Write-SvFailure -Kind 'vm-not-found' -Message "no VM $VmId on this host" }
    return $vm
}

# The snapshot (Msvm_VirtualSystemSettingData) with this InstanceID.
function Get-SvSnapshot {
    param([Parameter(Mandatory = $true)][string] $CheckpointId)
    $snap = Get-WmiObject -Namespace $SvNamespace -Class Msvm_VirtualSystemSettingData | Where-Object { $_.InstanceID -eq $CheckpointId }
    if ($null -eq $snap) { Write-SvFailure -Kind 'job' -Message "no checkpoint $CheckpointId" -ReturnValue 32779 }
    return $snap
}

# Wait for a CIM method's job (ReturnValue 4096) and fail with its ErrorCode; returns the finished job or $null.
function Complete-SvCall {
    param([Parameter(Mandatory = $true)] $Result, [Parameter(Mandatory = $true)][string] $What, [string] $FailureKind = 'job')
    if ($Result.ReturnValue -eq 4096) {
        $job = [wmi] $Result.Job
        while ($SvJobRunning -contains $job.JobState) {
            Start-Sleep -Milliseconds 250
            $job = [wmi] $Result.Job
        }
        if ($job.JobState -ne $SvJobCompleted) {
            Write-SvFailure -Kind $FailureKind -Message "$What failed: $($job.ErrorDescription)" -ReturnValue 4096 -ErrorCode $job.ErrorCode
        }
        return $job
    }
    if ($Result.ReturnValue -ne 0) { Write-SvFailure -Kind $FailureKind -Message "$What returned $($Result.ReturnValue)" -ReturnValue $Result.ReturnValue }
    return $null
}

# The element a finished job created (Msvm_AffectedJobElement), of the given class.
function Get-SvJobResult {
    param([Parameter(Mandatory = $true)] $Job, [Parameter(Mandatory = $true)][string] $ClassName)
    return $Job.GetRelated($ClassName, 'Msvm_AffectedJobElement', $null, $null, $null, $null, $false, $null) | Select-Object -First 1
}

function ConvertTo-SvIsoTime {
    param([string] $DmtfTime)
    if ([string]::IsNullOrEmpty($DmtfTime)) { return '' }
    return [Management.ManagementDateTimeConverter]::ToDateTime($DmtfTime).ToUniversalTime().ToString('o')
}

# A checkpoint record (host.ts HvCheckpoint) from a Get-VMSnapshot object.
function ConvertTo-SvCheckpoint {
    param([Parameter(Mandatory = $true)] $Snapshot)
    $frozen = @()
    foreach ($drive in @($Snapshot.HardDrives)) {
        if ([string]::IsNullOrEmpty($drive.Path)) { continue }
        $vhd = Get-VHD -Path $drive.Path
        $frozen += [ordered]@{ diskIdentifier = [string] $vhd.DiskIdentifier; path = [string] $drive.Path }
    }
    $kind = 'Standard'
    if ([string] $Snapshot.SnapshotType -eq 'Recovery') { $kind = 'Recovery' }
    return [ordered]@{
        id = "Microsoft:$(([string] $Snapshot.Id).ToUpperInvariant())"
        vmId = [string] $Snapshot.VMId
        name = [string] $Snapshot.Name
        kind = $kind
        created = $Snapshot.CreationTime.ToUniversalTime().ToString('o')
        frozen = @($frozen)
    }
}

# A reference point record (host.ts HvReferencePoint) from Msvm_VirtualSystemReferencePoint. Its
# VirtualDiskIdentifiers are instance ids of the VM's virtual disks (Msvm_StorageAllocationSettingData); each
# is mapped to the disk's Get-VHD DiskIdentifier.
function ConvertTo-SvReferencePoint {
    param([Parameter(Mandatory = $true)] $ReferencePoint)
    $rct = @($ReferencePoint.ResilientChangeTrackingIdentifiers)
    $disks = @($ReferencePoint.VirtualDiskIdentifiers)
    $pairs = @()
    for ($i = 0; $i -lt $rct.Count -and $i -lt $disks.Count; $i++) {
        $sasd = Get-WmiObject -Namespace $SvNamespace -Class Msvm_StorageAllocationSettingData | Where-Object { $_.InstanceID -eq $disks[$i] } | Select-Object -First 1
        $identifier = [string] $disks[$i]
        if ($null -ne $sasd -and @($sasd.HostResource).Count -gt 0) { $identifier = [string] (Get-VHD -Path @($sasd.HostResource)[0]).DiskIdentifier }
        $pairs += [ordered]@{ diskIdentifier = $identifier; rctId = [string] $rct[$i] }
    }
    return [ordered]@{
        id = [string] $ReferencePoint.InstanceID
        vmId = [string] $ReferencePoint.VirtualSystemIdentifier
        name = [string] $ReferencePoint.ElementName
        created = ''
        rctIds = @($pairs)
    }
}
