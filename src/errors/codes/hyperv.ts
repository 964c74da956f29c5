import type { ErrorTable } from '../spec.js';

/** Errors of the Hyper-V host layer (src/hypervisor/hyperv/): PowerShell/CIM calls and the Hyper-V simulation. */
export const HYPERV_ERRORS = {
  SV_ERR_HYPERV_HOST: { status: 503, summary: 'The Hyper-V host layer itself failed: powershell.exe could not be started (not a Windows host with the Hyper-V module), a script is missing, or the simulation\'s folder is damaged.' },
  SV_ERR_HYPERV_SCRIPT_FAILED: { status: 502, summary: 'A host-layer PowerShell script ended with an error (non-zero exit, or a terminating error on stderr); details carry the script, its exit code and stderr.' },
  SV_ERR_HYPERV_BAD_OUTPUT: { status: 502, summary: 'A host-layer script printed output that is not the documented JSON shape (not JSON, a missing or mistyped property); details name the record and the property.' },
  SV_ERR_HYPERV_JOB_FAILED: { status: 502, summary: 'A Hyper-V CIM method or its Msvm_ConcreteJob ended in an error (ReturnValue / ErrorCode and ErrorDescription in details), e.g. CreateSnapshot refused or a merge failed.' },
  SV_ERR_HYPERV_RCT_INVALID: { status: 409, summary: 'GetVirtualDiskChanges refused the LimitId: the disk\'s RCT history no longer has that RCT id (tracking reset, disk replaced); the driver falls back to digest comparison for that disk.' },
} as const satisfies ErrorTable;
