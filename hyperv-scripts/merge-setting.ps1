# Whether the VM's checkpoint merges can proceed (host.ts getMergeEnabled / setMergeEnabled). Hyper-V has no
# documented per-VM switch for this; what failed backup runs leave behind is a VM whose merge stays pending
# (Get-VM Status mentions a merge). Reading: false while a merge is pending. Setting true: ask Hyper-V to retry
# the pending merge by refreshing the VM's configuration (Set-VM with its own notes). UNVERIFIED on a real host:
# README "Hyper-V" lists it among what an administrator should try first. Prints {"value": bool}.
param(
    [Parameter(Mandatory = $true)][string] $VmId,
    [ValidateSet('', 'true', 'false')][string] $Enabled = ''
)
. (Join-Path $PSScriptRoot '_common.ps1')
$null = Get-SvComputerSystem -VmId $VmId
$vm = Get-VM -Id $VmId
$pending = ([string] $vm.Status -like '*merge*')
if ($Enabled -eq 'true' -and $pending) {
    Get-VM -Id $VmId | Set-VM -Notes ([string] $vm.Notes)
}
Write-SvResult -Data ([ordered]@{ value = -not $pending })
