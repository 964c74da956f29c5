# The VM's configuration as of a checkpoint (host.ts exportConfiguration):
# Msvm_VirtualSystemManagementService.ExportSystemDefinition of the snapshot with
# Msvm_VirtualSystemExportSettingData (CopySnapshotConfiguration 1 = export the given snapshot only,
# CopyVmStorage false, CopyVmRuntimeInformation false, CreateVmExportSubdirectory false, SnapshotVirtualSystem
# = the checkpoint). Configuration version >= 6 writes .vmcx/.vmrs/.vmgs; 2012 R2 writes .xml. Prints the
# files written.
param(
    [Parameter(Mandatory = $true)][string] $VmId,
    [Parameter(Mandatory = $true)][string] $CheckpointId,
    [Parameter(Mandatory = $true)][string] $Destination
)
. (Join-Path $PSScriptRoot '_common.ps1')
$cs = Get-SvComputerSystem -VmId $VmId
$snapshot = Get-SvSnapshot -CheckpointId $CheckpointId
$service = Get-SvService -ClassName Msvm_VirtualSystemManagementService
$null = New-Item -ItemType Directory -Force -Path $Destination
$settingsClass = [wmiclass] "\\.\$($SvNamespace):Msvm_VirtualSystemExportSettingData"
$settings = $settingsClass.CreateInstance()
$settings.CopySnapshotConfiguration = 1
$settings.SnapshotVirtualSystem = $snapshot.__PATH
$settings.CopyVmStorage = $false
$settings.CopyVmRuntimeInformation = $false
$settings.CreateVmExportSubdirectory = $false
$null = Complete-SvCall -Result ($service.ExportSystemDefinition($cs, $Destination, $settings.GetText(2))) -What "ExportSystemDefinition of VM $($cs.ElementName)"
$files = @(Get-ChildItem -Path $Destination -Recurse -File | Where-Object { @('.vmcx', '.vmrs', '.vmgs', '.xml') -contains $_.Extension.ToLowerInvariant() } | ForEach-Object { $_.FullName })
Write-SvResult -Data @($files)
