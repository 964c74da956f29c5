/**
 * The administrator's declaration of a replica VM on this (secondary) host, `shadowvault agent --replica SPEC`:
 *
 *   NAME=qsd=QMP_SOCKET,node=NODE,nbd=NBD_SOCKET,primary=QMP_SOCKET,job=JOB_ID[,id=VM_ID]
 *
 *   NAME     the replica VM's name (1..64 characters: letters, digits, `.`, `_`, `-`)
 *   qsd      the QMP socket of the qemu-storage-daemon that receives the replication and writes the replica's
 *            disk file
 *   node     the node name, inside that daemon, of the replica disk (the node its NBD export serves)
 *   nbd      the daemon's NBD server socket (the agent adds a read-only export of the frozen replica there)
 *   primary  a QMP socket of the primary's QEMU (a monitor of its own: QEMU serves one client per monitor)
 *   job      the id of the primary's `blockdev-mirror` job that replicates the disk
 *   id       the VM id the agent reports (default `replica-NAME`)
 *
 * Hostile or mistyped input gets SV_ERR_HYPERVISOR_REPLICA_CONFIG naming the spec and the field.
 */
import { isAbsolute } from 'node:path';
import { SvError } from '../../errors/index.js';

export interface ReplicaConfig {
  readonly name: string;
  readonly id: string;
  readonly qsd: string;
  readonly node: string;
  readonly nbd: string;
  readonly primary: string;
  readonly job: string;
}

const KEYS = ['qsd', 'node', 'nbd', 'primary', 'job', 'id'] as const;
type Key = (typeof KEYS)[number];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/u;
/** QEMU node names and job ids: a letter, then letters, digits, `-`, `.`, `_` (QEMU's id rule), at most 31. */
const QEMU_ID = /^[A-Za-z][A-Za-z0-9._-]{0,30}$/u;
const MAX_SPEC = 4096;

function bad(spec: string, why: string, field?: string): SvError {
  const shown = spec.length > 200 ? `${spec.slice(0, 200)}…` : spec;
  return new SvError('SV_ERR_HYPERVISOR_REPLICA_CONFIG', `--replica "${shown}": ${why} (expected NAME=qsd=QMP_SOCKET,node=NODE,nbd=NBD_SOCKET,primary=QMP_SOCKET,job=JOB_ID[,id=VM_ID])`, { ...(field ? { field } : {}) });
}

export function parseReplicaSpec(spec: string): ReplicaConfig {
  if (typeof spec !== 'string' || spec.length === 0 || spec.length > MAX_SPEC) throw bad(String(spec).slice(0, 200), `must be 1..${MAX_SPEC} characters`);
  const eq = spec.indexOf('=');
  if (eq <= 0) throw bad(spec, 'no NAME= at the start', 'name');
  const name = spec.slice(0, eq);
  if (!NAME.test(name)) throw bad(spec, `name "${name}" must be 1..64 letters, digits, ".", "_" or "-", starting with a letter or digit`, 'name');
  const fields: Partial<Record<Key, string>> = {};
  for (const part of spec.slice(eq + 1).split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw bad(spec, `"${part.slice(0, 100)}" is not KEY=VALUE`);
    const key = part.slice(0, i);
    const value = part.slice(i + 1);
    if (!(KEYS as readonly string[]).includes(key)) throw bad(spec, `unknown key "${key.slice(0, 100)}" (known: ${KEYS.join(', ')})`, key.slice(0, 100));
    if (fields[key as Key] !== undefined) throw bad(spec, `"${key}" given twice`, key);
    if (value.length === 0) throw bad(spec, `"${key}" is empty`, key);
    fields[key as Key] = value;
  }
  for (const k of ['qsd', 'nbd', 'primary'] as const) {
    const v = fields[k];
    if (v === undefined) throw bad(spec, `"${k}" is missing`, k);
    if (!isAbsolute(v) || v.includes('\0')) throw bad(spec, `"${k}" must be an absolute socket path`, k);
  }
  for (const k of ['node', 'job'] as const) {
    const v = fields[k];
    if (v === undefined) throw bad(spec, `"${k}" is missing`, k);
    if (!QEMU_ID.test(v)) throw bad(spec, `"${k}" "${v.slice(0, 100)}" is not a QEMU id (a letter, then up to 30 letters, digits, ".", "_" or "-")`, k);
  }
  const id = fields.id ?? `replica-${name}`;
  if (!NAME.test(id) && !/^[0-9a-fA-F-]{36}$/u.test(id)) throw bad(spec, `id "${id.slice(0, 100)}" must be a name like NAME or a UUID`, 'id');
  return { name, id, qsd: fields.qsd!, node: fields.node!, nbd: fields.nbd!, primary: fields.primary!, job: fields.job! };
}

/** Parse every --replica spec; names and ids must be unique. */
export function parseReplicaSpecs(specs: readonly string[]): ReplicaConfig[] {
  const out = specs.map(parseReplicaSpec);
  for (const [i, c] of out.entries()) {
    if (out.findIndex((o) => o.name === c.name || o.id === c.id) !== i) throw bad(specs[i]!, `replica name "${c.name}" or id "${c.id}" given twice`, 'name');
  }
  return out;
}
