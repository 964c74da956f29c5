import type { ErrorTable } from '../spec.js';

/** Errors of VMs on SMB 3.0 file servers (src/smb/): share configuration, the permission check, file-server routing. */
export const SMB_ERRORS = {
  SV_ERR_SMB_BAD_SHARE: { status: 400, summary: 'A share given to an agent is malformed: --smb-share wants //SERVER[:PORT]/NAME=LOCAL_PATH, --share wants NAME=PATH (an absolute folder); details name the value.' },
  SV_ERR_SMB_RIGHTS_MISSING: { status: 409, summary: 'The host\'s machine account lacks a right DPM requires on the SMB share or folder that holds a VM\'s disks (connect to the share, read, write or delete in the folder): the backup is refused before its point in time. details.unmet lists share, folder and right.' },
  SV_ERR_SMB_CHECK_FAILED: { status: 503, summary: 'The permission check could not talk to the SMB server at all (smbclient missing, server down, logon refused): details carry the share and the NT status.' },
  SV_ERR_SMB_NO_FILE_SERVER: { status: 503, summary: 'A VM\'s disk is on an SMB share, and no connected file-server agent serves that share: its reads are routed to the file server\'s agent, never through the host. Start `shadowvault agent --file-server --share NAME=PATH` on the file server.' },
  SV_ERR_SMB_BAD_PATH: { status: 400, summary: 'A file-server agent was asked for a path outside its share (absolute, `..`, a link leading out) or for a share it does not serve.' },
  SV_ERR_SMB_MERGE_FAILED: { status: 500, summary: 'Merging a checkpoint overlay back into its base disk (block-commit of the active layer, or qemu-img commit when QEMU is gone) failed; the overlay is kept (no guest write is lost) and the next start of the agent retries.' },
} as const satisfies ErrorTable;
