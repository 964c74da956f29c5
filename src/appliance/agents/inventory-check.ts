/**
 * Receipt check of an agent's inventory push (a hostile agent must not store junk or huge documents on the
 * appliance): every field typed and bounded, unknown fields dropped (the result is rebuilt field by field).
 * Anything wrong → SV_ERR_AGENT_BAD_PARAMS naming the path of the field.
 */
import { SvError } from '../../errors/index.js';
import { ONLINE_REQUIREMENTS, type MigrationRole, type OnlineRequirement, type ReplicaInfo, type ReplicaState, type TrackingState, type VmDisk, type VmState } from '../../hypervisor/driver.js';
import type { InventoryReport, VmReport } from '../../agent/rpc.js';
import { ownerRecordOf, type OwnerRecord } from '../../agent/owner.js';

const MAX_VMS = 4096;
const MAX_DISKS = 256;
const MAX_TEXT = 4096;
const VM_STATES: readonly VmState[] = ['running', 'paused', 'stopped', 'migrating', 'crashed', 'unknown'];
const MIGRATION: readonly MigrationRole[] = ['incoming', 'outgoing', 'completed'];
const REPLICA: readonly ReplicaState[] = ['replicating', 'resynchronising', 'unknown'];
const TRACKING: readonly TrackingState['state'][] = ['none', 'recording', 'inconsistent', 'disabled', 'unsupported'];

function fail(path: string, expected: string): never {
  throw new SvError('SV_ERR_AGENT_BAD_PARAMS', `inventory.push: ${path} must be ${expected}`, { method: 'inventory.push', field: path, expected });
}
function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object');
  return v as Record<string, unknown>;
}
function str(v: unknown, path: string, optional = false): string {
  if (optional && v === undefined) return undefined as unknown as string;
  if (typeof v !== 'string' || v.length > MAX_TEXT) fail(path, `a string of at most ${MAX_TEXT} characters`);
  return v;
}
function name(v: unknown, path: string): string {
  const s = str(v, path);
  if (s.length === 0 || s.length > 255) fail(path, 'a name of 1..255 characters');
  return s;
}
function uint(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(path, 'a non-negative safe integer');
  return v;
}
function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, 'a boolean');
  return v;
}
function oneOf<T extends string>(v: unknown, allowed: readonly T[], path: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) fail(path, `one of ${allowed.join(', ')}`);
  return v as T;
}
function list(v: unknown, max: number, path: string): unknown[] {
  if (!Array.isArray(v) || v.length > max) fail(path, `an array of at most ${max} items`);
  return v;
}
const opt = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> => (value === undefined ? {} : ({ [key]: value } as Record<K, V>));

function disk(v: unknown, p: string): VmDisk {
  const d = obj(v, p);
  const t = obj(d.tracking, `${p}.tracking`);
  return {
    key: name(d.key, `${p}.key`),
    device: str(d.device, `${p}.device`),
    format: str(d.format, `${p}.format`),
    virtualSize: uint(d.virtualSize, `${p}.virtualSize`),
    path: str(d.path, `${p}.path`),
    identity: str(d.identity, `${p}.identity`),
    snapshottable: bool(d.snapshottable, `${p}.snapshottable`),
    ...opt('reason', str(d.reason, `${p}.reason`, true)),
    tracking: { state: oneOf(t.state, TRACKING, `${p}.tracking.state`), persistent: bool(t.persistent, `${p}.tracking.persistent`), ...opt('reason', str(t.reason, `${p}.tracking.reason`, true)) },
  };
}

function replica(v: unknown, p: string): ReplicaInfo {
  const r = obj(v, p);
  const primary = r.primary === undefined ? undefined : obj(r.primary, `${p}.primary`);
  return {
    state: oneOf(r.state, REPLICA, `${p}.state`),
    ...(primary ? { primary: { qmp: str(primary.qmp, `${p}.primary.qmp`), job: str(primary.job, `${p}.primary.job`) } } : {}),
    ...opt('reason', str(r.reason, `${p}.reason`, true)),
  };
}

function owner(v: unknown, p: string, vmId: string): OwnerRecord {
  try {
    return ownerRecordOf(v, p, vmId);
  } catch {
    return fail(p, 'an ownership record {version: 1, vmId, appliance: {id, name}, since, host, takenOverFrom?}');
  }
}

function vm(v: unknown, p: string): VmReport {
  const m = obj(v, p);
  const ga = obj(m.guestAgent, `${p}.guestAgent`);
  const on = obj(m.online, `${p}.online`);
  const err = m.error === undefined ? undefined : obj(m.error, `${p}.error`);
  const requirements = Object.keys(ONLINE_REQUIREMENTS) as OnlineRequirement[];
  return {
    id: name(m.id, `${p}.id`),
    name: name(m.name, `${p}.name`),
    state: oneOf(m.state, VM_STATES, `${p}.state`),
    ...(m.migration === undefined ? {} : { migration: oneOf(m.migration, MIGRATION, `${p}.migration`) }),
    ...(m.replica === undefined ? {} : { replica: replica(m.replica, `${p}.replica`) }),
    disks: list(m.disks, MAX_DISKS, `${p}.disks`).map((d, i) => disk(d, `${p}.disks[${i}]`)),
    guestAgent: { present: bool(ga.present, `${p}.guestAgent.present`), answering: bool(ga.answering, `${p}.guestAgent.answering`), ...opt('version', str(ga.version, `${p}.guestAgent.version`, true)) },
    ...(err ? { error: { code: str(err.code, `${p}.error.code`), message: str(err.message, `${p}.error.message`) } } : {}),
    ...(m.owner === undefined ? {} : { owner: owner(m.owner, `${p}.owner`, name(m.id, `${p}.id`)) }),
    online: {
      possible: bool(on.possible, `${p}.online.possible`),
      unmet: list(on.unmet, requirements.length * 4, `${p}.online.unmet`).map((u, i) => {
        const r = obj(u, `${p}.online.unmet[${i}]`);
        const q = `${p}.online.unmet[${i}]`;
        return {
          requirement: oneOf(r.requirement, requirements, `${q}.requirement`), reason: str(r.reason, `${q}.reason`),
          ...opt('share', str(r.share, `${q}.share`, true)), ...opt('folder', str(r.folder, `${q}.folder`, true)), ...opt('right', str(r.right, `${q}.right`, true)),
        };
      }),
    },
  };
}

export function checkInventory(v: unknown): InventoryReport {
  const r = obj(v, 'inventory');
  const h = obj(r.host, 'inventory.host');
  const hv = obj(h.hypervisor, 'inventory.host.hypervisor');
  const vms = list(r.vms, MAX_VMS, 'inventory.vms').map((x, i) => vm(x, `inventory.vms[${i}]`));
  const ids = new Set<string>();
  for (const [i, x] of vms.entries()) {
    if (ids.has(x.id)) fail(`inventory.vms[${i}].id`, 'unique within the report');
    ids.add(x.id);
  }
  return {
    host: {
      name: name(h.name, 'inventory.host.name'),
      cluster: h.cluster === null ? null : name(h.cluster, 'inventory.host.cluster'),
      agentVersion: name(h.agentVersion, 'inventory.host.agentVersion'),
      hypervisor: { name: name(hv.name, 'inventory.host.hypervisor.name'), version: str(hv.version, 'inventory.host.hypervisor.version') },
      ...(h.fileServer === undefined ? {} : { fileServer: { shares: list(obj(h.fileServer, 'inventory.host.fileServer').shares, 256, 'inventory.host.fileServer.shares').map((x, i) => name(x, `inventory.host.fileServer.shares[${i}]`)) } }),
    },
    vms,
  };
}
