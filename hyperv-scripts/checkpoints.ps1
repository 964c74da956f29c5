# Checkpoints of a VM (host.ts listCheckpoints): Get-VMSnapshot (Msvm_VirtualSystemSettingData snapshots),
# recovery checkpoints included. Prints an array of HvCheckpoint records.
param(
    [Parameter(Mandatory = $true)][string] $VmId
)
. (Join-Path $PSScriptRoot '_common.ps1')
$null = Get-SvComputerSystem -VmId $VmId
$vm = Get-VM -Id $VmId
$out = @()
foreach ($snap in @(Get-VMSnapshot -VM $vm)) { $out += ConvertTo-SvCheckpoint -Snapshot $snap }
Write-SvResult -Data @($out)
