/** What the agent's methods need: the hypervisor driver, a way to open disk sources, where restores may go. */
import type { HypervisorDriver } from '../../hypervisor/driver.js';
import type { SmbShare } from '../../smb/shares.js';
import type { DiskSource, DiskSourceRef } from '../../sources/types.js';

export interface MethodDeps {
  readonly driver: HypervisorDriver;
  /** Opens a view disk's reference (src/sources/registry.ts openDiskSource in the agent process). */
  readonly open: (ref: DiskSourceRef, signal?: AbortSignal) => Promise<DiskSource>;
  /** Folders restores may write into (--restore-root); empty: restore to the host is refused. */
  readonly restoreRoots: readonly string[];
  /** A view or restore handle unused this long is aborted and released (default 10 min). */
  readonly idleMs?: number;
  /** Host side: the SMB shares the VMs' disks may lie on (a view's frozen file there is marked `onShare`). */
  readonly shares?: readonly SmbShare[];
  /** File server side: the shares this agent serves, name → folder (share.open). */
  readonly served?: ReadonlyMap<string, string>;
}

export const DEFAULT_IDLE_MS = 10 * 60_000;
/** Largest range one view.range / view.read / restore.write carries (bounds the agent's memory per call). */
export const MAX_CALL_BYTES = 16 * 1024 * 1024;
