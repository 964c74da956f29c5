# Import a VM from exported configuration files and restored disks (host.ts importVm): Compare-VM -Path
# <config> -Copy -GenerateNewId, the disks looked for by their file names in the folder of the restored disks
# (-VhdSourcePath) and copied under it ("Virtual Hard Disks"), the VM's files under it too, then Import-VM.
# Prints {"value": "<new VM id>"}. NOT RUN ON A REAL HYPER-V HOST by this project's tests.
param(
    [Parameter(Mandatory = $true)][string] $ConfigFile,
    [Parameter(Mandatory = $true)][string] $VhdDestination
)
. (Join-Path $PSScriptRoot '_common.ps1')
if (-not (Test-Path -LiteralPath $ConfigFile -PathType Leaf)) { Write-SvFailure -Kind 'host' -Message "no configuration file $ConfigFile" }
$vhds = Join-Path $VhdDestination 'Virtual Hard Disks'
$report = Compare-VM -Path $ConfigFile -Copy -GenerateNewId -VhdSourcePath $VhdDestination -VhdDestinationPath $vhds -VirtualMachinePath $VhdDestination
if (@($report.Incompatibilities).Count -gt 0) {
    Write-SvFailure -Kind 'job' -Message ("Import-VM: " + ((@($report.Incompatibilities) | ForEach-Object { $_.Message }) -join '; '))
}
$vm = Import-VM -CompatibilityReport $report
Write-SvResult -Data ([ordered]@{ value = $vm.Id.ToString() })
