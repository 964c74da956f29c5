# Reference points of a VM (host.ts listReferencePoints): Msvm_VirtualSystemReferencePoint whose
# VirtualSystemIdentifier is the VM. Prints an array of HvReferencePoint records.
param(
    [Parameter(Mandatory = $true)][string] $VmId
)
. (Join-Path $PSScriptRoot '_common.ps1')
$cs = Get-SvComputerSystem -VmId $VmId
$out = @()
foreach ($rp in @(Get-WmiObject -Namespace $SvNamespace -Class Msvm_VirtualSystemReferencePoint | Where-Object { $_.VirtualSystemIdentifier -eq $cs.Name })) {
    $out += ConvertTo-SvReferencePoint -ReferencePoint $rp
}
Write-SvResult -Data @($out)
