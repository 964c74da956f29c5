# Import a VM from exported configuration files and restored disks (host.ts importVm): Import-VM -Path
# <config> -Copy -GenerateNewId -VhdDestinationPath <folder of the restored disks>. Prints {"value": "<new VM id>"}.
param(
    [Parameter(Mandatory = $true)][string] $ConfigFile,
    [Parameter(Mandatory = $true)][string] $VhdDestination
)
. (Join-Path $PSScriptRoot '_common.ps1')
if (-not (Test-Path -LiteralPath $ConfigFile -PathType Leaf)) { Write-SvFailure -Kind 'host' -Message "no configuration file $ConfigFile" }
$report = Compare-VM -Path $ConfigFile -Copy -GenerateNewId -VhdDestinationPath $VhdDestination
if (@($report.Incompatibilities).Count -gt 0) {
    Write-SvFailure -Kind 'job' -Message ("Import-VM: " + ((@($report.Incompatibilities) | ForEach-Object { $_.Message }) -join '; '))
}
$vm = Import-VM -CompatibilityReport $report
Write-SvResult -Data ([ordered]@{ value = $vm.Id.ToString() })
