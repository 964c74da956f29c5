/**
 * The one error catalogue. Each area keeps its table in `codes/<area>.ts`; this module joins them, and
 * `SvErrorCode` is the union of every code. docs/ERRORS.md is generated from it (`npm run docs:errors`),
 * and test/errors.test.ts checks that every code is well formed and documented.
 */
import { AGENT_METHOD_ERRORS } from './codes/agent-methods.js';
import { AGENT_ERRORS } from './codes/agent.js';
import { API_ERRORS } from './codes/api.js';
import { APPLIANCE_ERRORS } from './codes/appliance.js';
import { BACKEND_ERRORS } from './codes/backend.js';
import { CLI_ERRORS } from './codes/cli.js';
import { CORE_ERRORS } from './codes/core.js';
import { FILES_ERRORS } from './codes/files.js';
import { FORMAT_ERRORS } from './codes/format.js';
import { HYPERVISOR_ERRORS } from './codes/hypervisor.js';
import { HYPERV_ERRORS } from './codes/hyperv.js';
import { FS_ERRORS } from './codes/fs.js';
import { JOB_ERRORS } from './codes/job.js';
import { NATIVE_ERRORS } from './codes/native.js';
import { NBD_ERRORS } from './codes/nbd.js';
import { POOL_ERRORS } from './codes/pool.js';
import { QEMU_ERRORS } from './codes/qemu.js';
import { SMB_ERRORS } from './codes/smb.js';
import { SOURCE_ERRORS } from './codes/source.js';
import { STORE_ERRORS } from './codes/store.js';
import { SYNC_ERRORS } from './codes/sync.js';
import { VHD_ERRORS } from './codes/vhd.js';
import { VHDX_ERRORS } from './codes/vhdx.js';
import { VOLUME_ERRORS } from './codes/volume.js';
import type { ErrorSpec } from './spec.js';

/** Area name → its table. The area name is the `<AREA>` part of each of its codes. */
export const AREAS = {
  CORE: CORE_ERRORS,
  NATIVE: NATIVE_ERRORS,
  POOL: POOL_ERRORS,
  CLI: CLI_ERRORS,
  FORMAT: FORMAT_ERRORS,
  FILES: FILES_ERRORS,
  VHD: VHD_ERRORS,
  VHDX: VHDX_ERRORS,
  STORE: STORE_ERRORS,
  BACKEND: BACKEND_ERRORS,
  SYNC: SYNC_ERRORS,
  API: API_ERRORS,
  APPLIANCE: APPLIANCE_ERRORS,
  JOB: JOB_ERRORS,
  NBD: NBD_ERRORS,
  QEMU: QEMU_ERRORS,
  HYPERVISOR: HYPERVISOR_ERRORS,
  HYPERV: HYPERV_ERRORS,
  VOLUME: VOLUME_ERRORS,
  AGENT: { ...AGENT_ERRORS, ...AGENT_METHOD_ERRORS },
  SOURCE: SOURCE_ERRORS,
  SMB: SMB_ERRORS,
  FS: FS_ERRORS,
} as const;

export const CATALOGUE = {
  ...CORE_ERRORS,
  ...NATIVE_ERRORS,
  ...POOL_ERRORS,
  ...CLI_ERRORS,
  ...FORMAT_ERRORS,
  ...FILES_ERRORS,
  ...VHD_ERRORS,
  ...VHDX_ERRORS,
  ...STORE_ERRORS,
  ...BACKEND_ERRORS,
  ...SYNC_ERRORS,
  ...API_ERRORS,
  ...APPLIANCE_ERRORS,
  ...JOB_ERRORS,
  ...NBD_ERRORS,
  ...QEMU_ERRORS,
  ...HYPERVISOR_ERRORS,
  ...HYPERV_ERRORS,
  ...VOLUME_ERRORS,
  ...AGENT_ERRORS,
  ...AGENT_METHOD_ERRORS,
  ...SOURCE_ERRORS,
  ...SMB_ERRORS,
  ...FS_ERRORS,
} as const;

export type SvErrorCode = keyof typeof CATALOGUE;

export function specOf(code: string): ErrorSpec | undefined {
  return (CATALOGUE as Record<string, ErrorSpec>)[code];
}
