# Changed ranges of a disk since an RCT id (host.ts getVirtualDiskChanges): one call of
# Msvm_ImageManagementService.GetVirtualDiskChanges(Path, LimitId, TargetSnapshotId '', ByteOffset,
# ByteLength). The caller loops while ProcessedByteLength comes back short. A refused LimitId (invalid
# parameter, 32773) is reported as rct-invalid. Prints {"ranges":[{"offset","length"}...],"processedByteLength"}.
param(
    [Parameter(Mandatory = $true)][string] $Path,
    [Parameter(Mandatory = $true)][string] $LimitId,
    [Parameter(Mandatory = $true)][long] $Offset,
    [Parameter(Mandatory = $true)][long] $Length
)
. (Join-Path $PSScriptRoot '_common.ps1')
$service = Get-SvService -ClassName Msvm_ImageManagementService
$result = $service.GetVirtualDiskChanges($Path, $LimitId, '', [uint64] $Offset, [uint64] $Length)
if ($result.ReturnValue -eq 32773) { Write-SvFailure -Kind 'rct-invalid' -Message "GetVirtualDiskChanges on $Path refused RCT id $LimitId" -ReturnValue 32773 }
$null = Complete-SvCall -Result $result -What "GetVirtualDiskChanges on $Path"
$offsets = @($result.ChangedByteOffsets)
$lengths = @($result.ChangedByteLengths)
$ranges = @()
for ($i = 0; $i -lt $offsets.Count; $i++) {
    if ($null -eq $offsets[$i]) { continue }
    $ranges += [ordered]@{ offset = [long] $offsets[$i]; length = [long] $lengths[$i] }
}
Write-SvResult -Data ([ordered]@{ ranges = @($ranges); processedByteLength = [long] $result.ProcessedByteLength })
