# Recovery checkpoint → reference point (host.ts convertToReferencePoint):
# Msvm_VirtualSystemSnapshotService.ConvertToReferencePoint (the .avhdx merge back; the snapshot is deleted).
# Prints the HvReferencePoint record.
param(
    [Parameter(Mandatory = $true)][string] $CheckpointId
)
. (Join-Path $PSScriptRoot '_common.ps1')
$snapshot = Get-SvSnapshot -CheckpointId $CheckpointId
$name = [string] $snapshot.ElementName
$service = Get-SvService -ClassName Msvm_VirtualSystemSnapshotService
$result = $service.ConvertToReferencePoint($snapshot, '')
$job = Complete-SvCall -Result $result -What "ConvertToReferencePoint of checkpoint $name"
if ($null -ne $job) { $rp = Get-SvJobResult -Job $job -ClassName Msvm_VirtualSystemReferencePoint } else { $rp = [wmi] $result.ResultingReferencePoint }
$record = ConvertTo-SvReferencePoint -ReferencePoint $rp
if ([string]::IsNullOrEmpty($record.name)) { $record.name = $name }
Write-SvResult -Data $record
