/**
 * Typed wrappers for the QMP commands the host agent uses (QEMU 7.2 schema: qapi/block-core.json,
 * block-export.json, transaction.json, run-state.json, char.json, qom.json). Each one is a thin call of
 * `QmpClient.execute` with the argument and result shapes written down; only the fields we read are typed.
 *
 * Point in time of all disks of a VM: one `transaction` of actions (`transactionAction`): per disk
 * block-dirty-bitmap-add and blockdev-backup with sync=none into a fleecing overlay (a qcow2 node whose
 * backing is the disk node), so QEMU copies old data into the overlay before the guest overwrites it.
 */
import type { QmpClient } from './qmp.js';

export type RunState = 'running' | 'paused' | 'prelaunch' | 'shutdown' | 'inmigrate' | 'postmigrate' | 'finish-migrate' | 'suspended' | 'internal-error' | 'io-error' | 'watchdog' | 'guest-panicked' | 'colo' | 'debug' | 'restore-vm' | 'save-vm';
export interface StatusInfo { running: boolean; status: RunState }
export interface BlockInfo {
  device: string;
  qdev?: string;
  inserted?: { 'node-name': string; file: string; drv: string; ro: boolean; image: { 'virtual-size': number; format: string } };
}
export interface NamedBlockNode { 'node-name': string; drv: string; file: string; ro: boolean; image: { 'virtual-size': number }; 'dirty-bitmaps'?: DirtyBitmapInfo[] }
export interface BlockJobInfo { device: string; type: string; len: number; offset: number; busy: boolean; paused: boolean; status: string; ready?: boolean; 'io-status'?: string }
export interface ChardevInfo { label: string; filename: string; 'frontend-open': boolean }
export interface ObjectPropertyInfo { name: string; type: string }
export interface BlockExportInfo { id: string; type: string; 'node-name': string; 'shutting-down': boolean }
export interface DirtyBitmapInfo { name?: string; count: number; granularity: number; recording: boolean; persistent: boolean; busy?: boolean; inconsistent?: boolean }

export const queryStatus = (q: QmpClient) => q.execute<StatusInfo>('query-status');
export const queryName = (q: QmpClient) => q.execute<{ name?: string }>('query-name');
export const queryUuid = (q: QmpClient) => q.execute<{ UUID: string }>('query-uuid');
export const queryBlock = (q: QmpClient) => q.execute<BlockInfo[]>('query-block');
export const queryNamedBlockNodes = (q: QmpClient) => q.execute<NamedBlockNode[]>('query-named-block-nodes', { flat: true });
export const queryBlockJobs = (q: QmpClient) => q.execute<BlockJobInfo[]>('query-block-jobs');
export const queryChardev = (q: QmpClient) => q.execute<ChardevInfo[]>('query-chardev');
export const queryBlockExports = (q: QmpClient) => q.execute<BlockExportInfo[]>('query-block-exports');
export const qomList = (q: QmpClient, path: string) => q.execute<ObjectPropertyInfo[]>('qom-list', { path });
export const qomGet = (q: QmpClient, path: string, property: string) => q.execute<unknown>('qom-get', { path, property });
export const qomSet = (q: QmpClient, path: string, property: string, value: unknown) => q.execute<Record<string, never>>('qom-set', { path, property, value });
export const stop = (q: QmpClient) => q.execute<Record<string, never>>('stop');
export const cont = (q: QmpClient) => q.execute<Record<string, never>>('cont');

/** Dirty bitmaps of one node (`query-block` reports them per device; named nodes carry them too). */
export async function dirtyBitmaps(q: QmpClient, node: string): Promise<DirtyBitmapInfo[]> {
  const nodes = await q.execute<Array<{ 'node-name': string; 'dirty-bitmaps'?: DirtyBitmapInfo[] }>>('query-named-block-nodes', { flat: true });
  return nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps'] ?? [];
}

/** One action of a `transaction` (qapi/transaction.json), e.g. {type: 'blockdev-backup', data: {...}}. */
export interface TransactionAction { type: string; data: Record<string, unknown> }
export const transactionAction = (type: string, data: Record<string, unknown>): TransactionAction => ({ type, data });

/** Run actions atomically: all take effect at one point in time, or none (QMP rolls back). */
export const transaction = (q: QmpClient, actions: TransactionAction[], properties?: { 'completion-mode'?: 'individual' | 'grouped' }) =>
  q.execute<Record<string, never>>('transaction', properties ? { actions, properties } : { actions });

export const blockdevAdd = (q: QmpClient, options: Record<string, unknown>) => q.execute<Record<string, never>>('blockdev-add', options);
export const blockdevDel = (q: QmpClient, nodeName: string) => q.execute<Record<string, never>>('blockdev-del', { 'node-name': nodeName });

export interface BitmapRef { node: string; name: string }
export const bitmapAdd = (q: QmpClient, b: BitmapRef & { granularity?: number; persistent?: boolean; disabled?: boolean }) =>
  q.execute<Record<string, never>>('block-dirty-bitmap-add', { ...b });
export const bitmapRemove = (q: QmpClient, b: BitmapRef) => q.execute<Record<string, never>>('block-dirty-bitmap-remove', { ...b });
export const bitmapEnable = (q: QmpClient, b: BitmapRef) => q.execute<Record<string, never>>('block-dirty-bitmap-enable', { ...b });
export const bitmapDisable = (q: QmpClient, b: BitmapRef) => q.execute<Record<string, never>>('block-dirty-bitmap-disable', { ...b });
/** Merge `bitmaps` (names on `node`) into `target`. */
export const bitmapMerge = (q: QmpClient, node: string, target: string, bitmaps: string[]) =>
  q.execute<Record<string, never>>('block-dirty-bitmap-merge', { node, target, bitmaps });

/** The NBD server QEMU runs for exports; `path` is a unix socket it creates. */
export const nbdServerStart = (q: QmpClient, path: string) =>
  q.execute<Record<string, never>>('nbd-server-start', { addr: { type: 'unix', data: { path } } });
export const nbdServerStop = (q: QmpClient) => q.execute<Record<string, never>>('nbd-server-stop');

/**
 * Export a node read-only over the NBD server; `bitmaps` are exposed as qemu:dirty-bitmap:<name> contexts (a
 * name on the node or its chain, or {node, name} for a bitmap of another node, e.g. the disk under a
 * snapshot-access filter).
 */
export const blockExportAdd = (q: QmpClient, e: { id: string; nodeName: string; name?: string; bitmaps?: Array<string | BitmapRef>; writable?: boolean; allocationDepth?: boolean }) =>
  q.execute<Record<string, never>>('block-export-add', {
    type: 'nbd',
    id: e.id,
    'node-name': e.nodeName,
    name: e.name ?? e.id,
    writable: e.writable ?? false,
    ...(e.bitmaps ? { bitmaps: e.bitmaps } : {}),
    ...(e.allocationDepth ? { 'allocation-depth': true } : {}),
  });
export const blockExportDel = (q: QmpClient, id: string, mode: 'safe' | 'hard' = 'safe') => q.execute<Record<string, never>>('block-export-del', { id, mode });

export const blockJobCancel = (q: QmpClient, device: string, force = true) => q.execute<Record<string, never>>('block-job-cancel', { device, force });
export const jobDismiss = (q: QmpClient, id: string) => q.execute<Record<string, never>>('job-dismiss', { id });

export const migrateSetCapabilities = (q: QmpClient, capabilities: Record<string, boolean>) =>
  q.execute<Record<string, never>>('migrate-set-capabilities', {
    capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })),
  });
