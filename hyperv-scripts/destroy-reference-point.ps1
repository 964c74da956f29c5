# Destroy a reference point (host.ts destroyReferencePoint):
# Msvm_VirtualSystemReferencePointService.DestroyReferencePoint. Prints {"value": true}.
param(
    [Parameter(Mandatory = $true)][string] $ReferencePointId
)
. (Join-Path $PSScriptRoot '_common.ps1')
$rp = Get-WmiObject -Namespace $SvNamespace -Class Msvm_VirtualSystemReferencePoint | Where-Object { $_.InstanceID -eq $ReferencePointId }
if ($null -eq $rp) { Write-SvFailure -Kind 'job' -Message "no reference point $ReferencePointId" -ReturnValue 32779 }
$service = Get-SvService -ClassName Msvm_VirtualSystemReferencePointService
$null = Complete-SvCall -Result ($service.DestroyReferencePoint($rp)) -What "DestroyReferencePoint $ReferencePointId"
Write-SvResult -Data ([ordered]@{ value = $true })
