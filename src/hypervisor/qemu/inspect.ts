/**
 * What one running QEMU tells about its VM over QMP: id (query-uuid), name, run state, disks (query-block
 * + query-named-block-nodes for their dirty bitmaps) and the guest agent (ga-lookup + guest-ping/guest-info
 * with a short timeout). Read-only: nothing here changes the VM.
 *
 * A disk is a device with a medium. Its node is the device's root node, except while one of our views has
 * a copy-before-write filter above it: then the node under the filter (from the state file's view record).
 */
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { findGuestAgentSocket } from '../../qemu/ga-lookup.js';
import { GuestAgentClient } from '../../qemu/guest-agent.js';
import type { QmpClient } from '../../qemu/qmp.js';
import { queryBlock, queryName, queryNamedBlockNodes, queryStatus, queryUuid, type DirtyBitmapInfo, type RunState } from '../../qemu/qmp-commands.js';
import type { TrackingState, VmDisk, VmState } from '../driver.js';
import { isOurs, isTrackingBitmap } from './names.js';

export interface LiveDisk extends VmDisk {
  /** The disk's own node (format node), where the tracking bitmap lives. */
  readonly node: string;
  /** QOM path of the device (qom-set drive on it inserts/removes the copy-before-write filter). */
  readonly qdev: string;
  /** Our sv-track-* bitmaps on the node. */
  readonly bitmaps: readonly DirtyBitmapInfo[];
}

export interface GuestAgentProbe {
  readonly present: boolean;
  readonly answering: boolean;
  readonly version?: string;
  readonly socket?: string;
  readonly freezeSupported: boolean;
  readonly error?: string;
}

export interface LiveVm {
  readonly id: string;
  readonly name: string;
  readonly state: VmState;
  readonly runState: RunState;
  readonly disks: readonly LiveDisk[];
}

export function vmState(status: RunState): VmState {
  switch (status) {
    case 'running': return 'running';
    case 'paused': case 'suspended': case 'debug': case 'io-error': case 'watchdog': case 'save-vm': case 'restore-vm': return 'paused';
    case 'inmigrate': case 'postmigrate': case 'finish-migrate': return 'migrating';
    case 'shutdown': return 'stopped';
    case 'internal-error': case 'guest-panicked': return 'crashed';
    default: return 'unknown';
  }
}

/** `/machine/peripheral/vblk0/virtio-backend` → `vblk0`; an anonymous device keeps its QOM path. */
export function deviceKey(qdev: string): string {
  return /^\/machine\/peripheral\/([^/]+)/u.exec(qdev)?.[1] ?? qdev;
}

/** `path#dev:ino` of a file the host can see; the path and node name when it cannot. */
export function diskIdentity(path: string, node: string): string {
  try {
    const st = statSync(path);
    return `${path}#${st.dev}:${st.ino}`;
  } catch {
    return `${path}#node:${node}`;
  }
}

function isHostDevice(path: string, drv: string): boolean {
  if (drv === 'host_device' || drv === 'host_cdrom') return true;
  try {
    const st = statSync(path);
    return st.isBlockDevice() || st.isCharacterDevice();
  } catch {
    return path.startsWith('/dev/');
  }
}

/** json:{"file": {"filename": ...}} names (QEMU's description of a node graph) → the file name. */
function fileName(file: string): string {
  if (!file.startsWith('json:')) return file;
  try {
    const j = JSON.parse(file.slice(5)) as { file?: { filename?: string; file?: { filename?: string } } };
    return j.file?.filename ?? j.file?.file?.filename ?? file;
  } catch {
    return file;
  }
}

function tracking(format: string, snapshottable: boolean, bitmaps: readonly DirtyBitmapInfo[]): TrackingState {
  const persistent = format === 'qcow2';
  if (!snapshottable) return { state: 'unsupported', reason: 'a pass-through host block device is not tracked', persistent: false };
  const bad = bitmaps.find((b) => b.inconsistent);
  if (bad) return { state: 'inconsistent', reason: `bitmap ${bad.name} is inconsistent (unclean shutdown)`, persistent };
  if (bitmaps.some((b) => b.recording)) return { state: 'recording', persistent };
  if (bitmaps.length > 0) return { state: 'disabled', reason: `bitmap ${bitmaps[0]!.name} is not recording (a view was not committed or aborted)`, persistent };
  return { state: 'none', persistent };
}

/**
 * The VM behind `qmp`. `underFilter(qdev)` names the disk node below our copy-before-write filter for a
 * device whose root node is one of ours (a view in progress).
 */
export async function inspectVm(qmp: QmpClient, underFilter: (vmId: string, qdev: string) => string | undefined): Promise<LiveVm> {
  const [uuid, name, status, blocks, nodes] = await Promise.all([queryUuid(qmp), queryName(qmp), queryStatus(qmp), queryBlock(qmp), queryNamedBlockNodes(qmp)]);
  const byName = new Map(nodes.map((n) => [n['node-name'], n]));
  const disks: LiveDisk[] = [];
  for (const b of blocks) {
    if (!b.inserted || !b.qdev) continue;
    const root = b.inserted['node-name'];
    const node = isOurs(root) ? underFilter(uuid.UUID, b.qdev) ?? root : root;
    const info = byName.get(node);
    const path = fileName(info?.file ?? b.inserted.file);
    const format = info?.drv ?? b.inserted.drv;
    const snapshottable = !isHostDevice(path, format);
    const bitmaps = (info?.['dirty-bitmaps'] ?? []).filter((m) => isTrackingBitmap(m.name));
    disks.push({
      key: deviceKey(b.qdev),
      device: b.qdev,
      format,
      virtualSize: info?.image['virtual-size'] ?? b.inserted.image['virtual-size'],
      path,
      identity: diskIdentity(path, node),
      snapshottable,
      ...(snapshottable ? {} : { reason: `disk ${deviceKey(b.qdev)} (${path}) is a pass-through host block device` }),
      tracking: tracking(format, snapshottable, bitmaps),
      node,
      qdev: b.qdev,
      bitmaps,
    });
  }
  return { id: uuid.UUID, name: name.name ?? basename(uuid.UUID), state: vmState(status.status), runState: status.status, disks };
}

/** Find, ping and ask the guest agent what it supports; never throws. */
export async function probeGuestAgent(qmp: QmpClient, timeoutMs = 1500): Promise<GuestAgentProbe> {
  let socket: string;
  try {
    socket = await findGuestAgentSocket(qmp);
  } catch (err) {
    return { present: false, answering: false, freezeSupported: false, error: (err as Error).message };
  }
  let ga: GuestAgentClient | undefined;
  try {
    ga = await GuestAgentClient.connect(socket, { connectTimeoutMs: timeoutMs, commandTimeoutMs: timeoutMs });
    await ga.ping();
    const info = await ga.info();
    const freezeSupported = info.supported_commands.some((c) => c.name === 'guest-fsfreeze-freeze' && c.enabled);
    return { present: true, answering: true, version: info.version, socket, freezeSupported };
  } catch (err) {
    return { present: true, answering: false, socket, freezeSupported: false, error: (err as Error).message };
  } finally {
    ga?.close();
  }
}
