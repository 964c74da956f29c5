# Save or resume a VM (host.ts saveVm / resumeVm): Msvm_ComputerSystem.RequestStateChange, 6 (save: DPM's
# offline backup) or 2 (start from the saved state). Prints {"value": true}.
param(
    [Parameter(Mandatory = $true)][string] $VmId,
    [Parameter(Mandatory = $true)][ValidateSet('Save', 'Start')][string] $Action
)
. (Join-Path $PSScriptRoot '_common.ps1')
$cs = Get-SvComputerSystem -VmId $VmId
$requested = 2
if ($Action -eq 'Save') { $requested = 6 }
# Already in the state asked for: nothing to do (2 Enabled = running, 6 Enabled but Offline = saved).
if ([int] $cs.EnabledState -ne $requested) {
    $null = Complete-SvCall -Result ($cs.RequestStateChange($requested)) -What "RequestStateChange($requested) of VM $($cs.ElementName)"
}
Write-SvResult -Data ([ordered]@{ value = $true })
