# Remove a checkpoint (host.ts removeCheckpoint): Msvm_VirtualSystemSnapshotService.DestroySnapshot; the
# .avhdx merges back into its parent. Prints {"value": true}.
param(
    [Parameter(Mandatory = $true)][string] $CheckpointId
)
. (Join-Path $PSScriptRoot '_common.ps1')
$snapshot = Get-SvSnapshot -CheckpointId $CheckpointId
$service = Get-SvService -ClassName Msvm_VirtualSystemSnapshotService
$null = Complete-SvCall -Result ($service.DestroySnapshot($snapshot)) -What "DestroySnapshot of checkpoint $($snapshot.ElementName)"
Write-SvResult -Data ([ordered]@{ value = $true })
