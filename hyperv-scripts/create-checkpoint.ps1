# A recovery checkpoint (host.ts createRecoveryCheckpoint): Msvm_VirtualSystemSnapshotService.CreateSnapshot
# with SnapshotType 32768 (recovery) and a Msvm_VirtualSystemSnapshotSettingData embedded instance:
# ConsistencyLevel 1 (application consistent: VSS in the guest) or 2 (crash consistent),
# IgnoreNonSnapshottableDisks. Prints the HvCheckpoint record.
param(
    [Parameter(Mandatory = $true)][string] $VmId,
    [Parameter(Mandatory = $true)][string] $Name,
    [Parameter(Mandatory = $true)][ValidateSet('ApplicationConsistent', 'CrashConsistent')][string] $ConsistencyLevel,
    [Parameter(Mandatory = $true)][ValidateSet('0', '1')][string] $IgnoreNonSnapshottableDisks
)
. (Join-Path $PSScriptRoot '_common.ps1')
$cs = Get-SvComputerSystem -VmId $VmId
$service = Get-SvService -ClassName Msvm_VirtualSystemSnapshotService

$settingsClass = [wmiclass] "\\.\$($SvNamespace):Msvm_VirtualSystemSnapshotSettingData"
$settings = $settingsClass.CreateInstance()
$settings.ConsistencyLevel = 2
if ($ConsistencyLevel -eq 'ApplicationConsistent') { $settings.ConsistencyLevel = 1 }
$settings.IgnoreNonSnapshottableDisks = ($IgnoreNonSnapshottableDisks -eq '1')

$result = $service.CreateSnapshot($cs, $settings.GetText(2), 32768)
$job = Complete-SvCall -Result $result -What "CreateSnapshot of VM $($cs.ElementName)"
if ($null -ne $job) { $snapshot = Get-SvJobResult -Job $job -ClassName Msvm_VirtualSystemSettingData } else { $snapshot = [wmi] $result.ResultingSnapshot }

# ElementName of the new checkpoint: the caller's name (what marks it as the driver's own).
$snapshot.ElementName = $Name
$management = Get-SvService -ClassName Msvm_VirtualSystemManagementService
$null = Complete-SvCall -Result ($management.ModifySystemSettings($snapshot.GetText(2))) -What "naming checkpoint $Name"

$vm = Get-VM -Id $VmId
$snap = Get-VMSnapshot -VM $vm | Where-Object { "Microsoft:$(([string] $_.Id).ToUpperInvariant())" -eq $snapshot.InstanceID -or $_.Name -eq $Name } | Select-Object -First 1
Write-SvResult -Data (ConvertTo-SvCheckpoint -Snapshot $snap)
