/**
 * A VM's configuration as kept with a recovery point (issue 14, "capture the configuration with each point"):
 * the hypervisor's own files (Hyper-V: the exported .vmcx/.vmrs/.vmgs, or the .xml of a 2012 R2 host; the
 * Hyper-V SIMULATION: a `.sim-vmcx.json`; QEMU: `qemu-config.json`, a machine description from QMP query-*
 * commands) plus a small JSON description of them (`VmConfigDescription`: format, version, per file name,
 * size and SHA-256). The description is what a point's JSON shows as `configuration`; the bytes are stored in
 * the store's blobs like disk blocks (src/sync/config-files.ts).
 *
 * The files cross two trust boundaries (agent → appliance, store → restore) and are then written into folders
 * by their names, so every name, size and count is checked here, in one place, on every crossing:
 * - a name is ONE path component: 1..128 characters of letters, digits, space, `.`, `_`, `-`, `{`, `}`, not
 *   starting with `.` or space (no `..`, no separator, no drive letter, no NUL);
 *   names are unique ignoring case (Windows folders);
 * - at most CONFIG_LIMITS.files files, at most CONFIG_LIMITS.totalBytes bytes in all (one agent call carries
 *   them; a real Hyper-V VM's files are a few MiB: the .vmgs is 4 MiB);
 * - the description's sizes and digests must match the bytes (`joinConfiguration`).
 * Anything else: SV_ERR_HYPERVISOR_BAD_CONFIGURATION naming the field.
 */
import { createHash } from 'node:crypto';
import { SvError } from '../errors/index.js';

/** What the files are: the hypervisor's format (the SIMULATION's is labelled as one). */
export const CONFIG_FORMATS = ['hyperv-vmcx', 'hyperv-xml', 'hyperv-sim-json', 'qemu-qmp-json'] as const;
export type ConfigFormat = (typeof CONFIG_FORMATS)[number];

export const CONFIG_LIMITS = { files: 16, nameLength: 128, totalBytes: 16 * 1024 * 1024, versionLength: 64, noteLength: 1000 } as const;

/** The file name the description is written under beside the files (restore as files). */
export const DESCRIPTION_FILE = 'shadowvault-configuration.json';

export interface VmConfigFile {
  readonly name: string;
  readonly data: Uint8Array;
}

/** A VM's configuration as a view gives it (PointInTimeView.configuration()). */
export interface VmConfiguration {
  readonly format: ConfigFormat;
  /** Hyper-V: the configuration version ("9.0"); QEMU: the QEMU version ("7.2.0"). */
  readonly version: string;
  /** True for the Hyper-V SIMULATION's files (not a real Hyper-V configuration). */
  readonly simulated: boolean;
  /** What the files are, for a person (e.g. how to use them). */
  readonly note?: string;
  readonly files: readonly VmConfigFile[];
}

/** The small JSON that describes a configuration (stored in the point, shown by `points --json`). */
export interface VmConfigDescription {
  readonly format: ConfigFormat;
  readonly version: string;
  readonly simulated: boolean;
  readonly note?: string;
  readonly files: ReadonlyArray<{ readonly name: string; readonly size: number; readonly sha256: string }>;
}

function bad(where: string, what: string, details: Record<string, unknown> = {}): SvError {
  return new SvError('SV_ERR_HYPERVISOR_BAD_CONFIGURATION', `${where}: ${what}`, { where, ...details });
}

const NAME_RE = /^[A-Za-z0-9_{}-][A-Za-z0-9 ._{}-]*$/u;
const HEX64 = /^[0-9a-f]{64}$/u;

/** Throws unless `name` is one safe path component (see the header); returns it. */
export function checkConfigName(name: unknown, where: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > CONFIG_LIMITS.nameLength || !NAME_RE.test(name) || name.endsWith(' ') || name.endsWith('.')) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw bad(where, `configuration file name ${shown} is not one plain path component (1..${CONFIG_LIMITS.nameLength} of A-Z a-z 0-9 space . _ - { }, not starting with . or space)`, { name: typeof name === 'string' ? name.slice(0, 200) : null });
  }
  return name;
}

function checkNames(names: readonly unknown[], where: string): void {
  if (names.length === 0) throw bad(where, 'a configuration has at least one file');
  if (names.length > CONFIG_LIMITS.files) throw bad(where, `${names.length} configuration files, at most ${CONFIG_LIMITS.files}`, { files: names.length });
  const seen = new Set<string>();
  for (const n of names) {
    const name = checkConfigName(n, where).toLowerCase();
    if (name === DESCRIPTION_FILE) throw bad(where, `a configuration file may not be named ${DESCRIPTION_FILE}`);
    if (seen.has(name)) throw bad(where, `configuration file ${String(n)} is listed twice`, { name: n });
    seen.add(name);
  }
}

function checkHead(o: Record<string, unknown>, where: string): { format: ConfigFormat; version: string; simulated: boolean; note?: string } {
  if (!(CONFIG_FORMATS as readonly unknown[]).includes(o.format)) throw bad(where, `format ${JSON.stringify(o.format)?.slice(0, 40)} is not one of ${CONFIG_FORMATS.join(', ')}`);
  if (typeof o.version !== 'string' || o.version.length > CONFIG_LIMITS.versionLength) throw bad(where, `version must be a string of at most ${CONFIG_LIMITS.versionLength} characters`);
  if (typeof o.simulated !== 'boolean') throw bad(where, 'simulated must be true or false');
  if (o.note !== undefined && (typeof o.note !== 'string' || o.note.length > CONFIG_LIMITS.noteLength)) throw bad(where, `note must be a string of at most ${CONFIG_LIMITS.noteLength} characters`);
  return { format: o.format as ConfigFormat, version: o.version, simulated: o.simulated, ...(o.note !== undefined ? { note: o.note as string } : {}) };
}

/** Throws unless `c` is a well-formed configuration (names, count, total size); returns it. */
export function checkConfiguration(c: VmConfiguration, where: string): VmConfiguration {
  checkHead(c as unknown as Record<string, unknown>, where);
  if (!Array.isArray(c.files)) throw bad(where, 'files must be a list');
  checkNames(c.files.map((f) => f.name), where);
  let total = 0;
  for (const f of c.files) {
    if (!(f.data instanceof Uint8Array)) throw bad(where, `file ${f.name} has no bytes`);
    total += f.data.length;
  }
  if (total > CONFIG_LIMITS.totalBytes) throw bad(where, `configuration files hold ${total} bytes, at most ${CONFIG_LIMITS.totalBytes}`, { bytes: total });
  return c;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The description of a (checked) configuration. */
export function describeConfiguration(c: VmConfiguration): VmConfigDescription {
  return {
    format: c.format, version: c.version, simulated: c.simulated, ...(c.note !== undefined ? { note: c.note } : {}),
    files: c.files.map((f) => ({ name: f.name, size: f.data.length, sha256: sha256(f.data) })),
  };
}

/**
 * Parse a description that arrived from elsewhere (an agent's answer, a manifest, a file): exactly the
 * documented fields, checked names, sizes within the limits, hex digests. Throws SV_ERR_HYPERVISOR_BAD_CONFIGURATION.
 */
export function parseConfigDescription(raw: unknown, where: string): VmConfigDescription {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(where, 'the configuration description is not a JSON object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['format', 'version', 'simulated', 'note', 'files'].includes(k)) throw bad(where, `unknown field ${JSON.stringify(k.slice(0, 40))}`);
  const head = checkHead(o, where);
  if (!Array.isArray(o.files)) throw bad(where, 'files must be a list');
  const files = o.files.map((f: unknown, i: number) => {
    if (typeof f !== 'object' || f === null || Array.isArray(f)) throw bad(where, `files[${i}] is not an object`);
    const r = f as Record<string, unknown>;
    if (Object.keys(r).length !== 3) throw bad(where, `files[${i}] must have exactly name, size, sha256`);
    const name = checkConfigName(r.name, where);
    if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0 || r.size > CONFIG_LIMITS.totalBytes) throw bad(where, `files[${i}].size ${JSON.stringify(r.size)?.slice(0, 30)} is not a size of at most ${CONFIG_LIMITS.totalBytes}`);
    if (typeof r.sha256 !== 'string' || !HEX64.test(r.sha256)) throw bad(where, `files[${i}].sha256 is not a hex SHA-256`);
    return { name, size: r.size, sha256: r.sha256 };
  });
  checkNames(files.map((f) => f.name), where);
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > CONFIG_LIMITS.totalBytes) throw bad(where, `configuration files hold ${total} bytes, at most ${CONFIG_LIMITS.totalBytes}`, { bytes: total });
  return { ...head, files };
}

/** The files' bytes back to back (the agent's answer payload), in description order. */
export function packConfiguration(c: VmConfiguration): Buffer {
  return Buffer.concat(c.files.map((f) => f.data));
}

/** Split a payload by a description (sizes must add up, digests must match): the configuration. */
export function joinConfiguration(d: VmConfigDescription, payload: Uint8Array, where: string): VmConfiguration {
  const total = d.files.reduce((n, f) => n + f.size, 0);
  if (payload.length !== total) throw bad(where, `the files hold ${payload.length} bytes, the description says ${total}`, { bytes: payload.length, expected: total });
  let at = 0;
  const files = d.files.map((f) => {
    const data = payload.subarray(at, at + f.size);
    at += f.size;
    if (sha256(data) !== f.sha256) throw bad(where, `file ${f.name}: SHA-256 ${sha256(data)} differs from the description's ${f.sha256}`, { name: f.name });
    return { name: f.name, data };
  });
  return checkConfiguration({ format: d.format, version: d.version, simulated: d.simulated, ...(d.note !== undefined ? { note: d.note } : {}), files }, where);
}
