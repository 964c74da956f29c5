# VM inventory (host.ts listVms): Get-VM (Msvm_ComputerSystem + Msvm_VirtualSystemSettingData), the Backup
# (volume shadow copy) integration service, Get-VMHardDiskDrive + Get-VHD per disk, Get-ClusterGroup for
# clustered VMs. Prints an array of HvVm records.
param()
. (Join-Path $PSScriptRoot '_common.ps1')

# The VSS integration component's id (its name is localised; the id is not).
$VssComponentId = '35FA2E29-EA23-4236-96AE-3A6EBACBA440'

$groups = @()
if (Get-Command -Name Get-ClusterGroup -ErrorAction SilentlyContinue) {
    try { $groups = @(Get-ClusterGroup -ErrorAction Stop | Where-Object { [string] $_.GroupType -eq 'VirtualMachine' }) } catch { $groups = @() }
}
$csvRoots = @()
if (Get-Command -Name Get-ClusterSharedVolume -ErrorAction SilentlyContinue) {
    try { $csvRoots = @(Get-ClusterSharedVolume -ErrorAction Stop | ForEach-Object { $_.SharedVolumeInfo.FriendlyVolumeName }) } catch { $csvRoots = @() }
}

function Get-StorageKind {
    param([string] $Path)
    if ($Path.StartsWith('\\')) { return 'SMB' }
    foreach ($root in $csvRoots) { if ($Path.StartsWith($root, [StringComparison]::OrdinalIgnoreCase)) { return 'CSV' } }
    return 'Local'
}

$out = @()
foreach ($vm in @(Get-VM)) {
    $state = 'Other'
    switch ([string] $vm.State) {
        'Running' { $state = 'Running' }
        'Off' { $state = 'Off' }
        'Saved' { $state = 'Saved' }
        'Paused' { $state = 'Paused' }
    }
    if ([string] $vm.Status -like '*migrat*') { $state = 'Migrating' }

    $vss = Get-VMIntegrationService -VM $vm | Where-Object { ([string] $_.Id).EndsWith($VssComponentId, [StringComparison]::OrdinalIgnoreCase) } | Select-Object -First 1
    $problems = @()
    $enabled = $false
    $responding = $false
    if ($null -ne $vss) {
        $enabled = [bool] $vss.Enabled
        $responding = ([string] $vss.PrimaryOperationalStatus -eq 'Ok')
        if ($enabled -and -not $responding -and -not [string]::IsNullOrEmpty([string] $vss.SecondaryStatusDescription)) {
            $problems += [string] $vss.SecondaryStatusDescription
        }
    }

    $disks = @()
    foreach ($drive in @(Get-VMHardDiskDrive -VM $vm)) {
        if ([string]::IsNullOrEmpty($drive.Path) -or $null -ne $drive.DiskNumber) {
            $disks += [ordered]@{
                controllerType = [string] $drive.ControllerType; controllerNumber = [int] $drive.ControllerNumber
                controllerLocation = [int] $drive.ControllerLocation; path = "PhysicalDisk$($drive.DiskNumber)"; basePath = "PhysicalDisk$($drive.DiskNumber)"
                format = 'PassThrough'; virtualSize = 0; diskIdentifier = "physical:$($drive.DiskNumber)"
            }
            continue
        }
        $vhd = Get-VHD -Path $drive.Path
        $base = $vhd
        while ($base.Path.EndsWith('.avhdx', [StringComparison]::OrdinalIgnoreCase) -or $base.Path.EndsWith('.avhd', [StringComparison]::OrdinalIgnoreCase)) {
            $base = Get-VHD -Path $base.ParentPath
        }
        $disks += [ordered]@{
            controllerType = [string] $drive.ControllerType; controllerNumber = [int] $drive.ControllerNumber
            controllerLocation = [int] $drive.ControllerLocation; path = [string] $drive.Path; basePath = [string] $base.Path
            format = [string] $vhd.VhdFormat; virtualSize = [long] $vhd.Size; diskIdentifier = [string] $vhd.DiskIdentifier
        }
    }

    $cluster = $null
    $group = $groups | Where-Object { $_.Name -eq $vm.Name -or ($_ | Get-ClusterResource -ErrorAction SilentlyContinue | Get-VM -ErrorAction SilentlyContinue | Where-Object { $_.Id -eq $vm.Id }) } | Select-Object -First 1
    if ($null -ne $group) {
        $groupState = [string] $group.State
        if (@('Online', 'Offline', 'Failed', 'PartialOnline', 'Pending') -notcontains $groupState) { $groupState = 'Unknown' }
        $cluster = [ordered]@{ ownerNode = [string] $group.OwnerNode.Name; groupState = $groupState }
    }

    $out += [ordered]@{
        id = $vm.Id.ToString()
        name = [string] $vm.Name
        state = $state
        generation = [int] $vm.Generation
        configurationVersion = [string] $vm.Version
        backup = [ordered]@{ enabled = $enabled; responding = $responding; guestProblems = @($problems) }
        disks = @($disks)
        cluster = $cluster
        storage = Get-StorageKind -Path ([string] $vm.ConfigurationLocation)
        configurationPath = [string] $vm.ConfigurationLocation
    }
}
Write-SvResult -Data @($out)
