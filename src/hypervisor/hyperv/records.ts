/**
 * Parsing what the host-layer scripts print (hyperv-scripts/*.ps1) into the typed records of host.ts.
 *
 * Every script prints exactly one JSON document (ConvertTo-Json -Depth 8 -Compress), the ENVELOPE:
 *   { "ok": true,  "data": <record or array of records> }
 *   { "ok": false, "error": { "kind": "vm-not-found" | "rct-invalid" | "job" | "host", "message": "…",
 *                             "returnValue"?: n, "errorCode"?: n } }
 * Windows PowerShell 5.1's ConvertTo-Json turns a one-element array into the element itself and an empty one
 * into null: where an array is expected, a lone object is taken as [object] and null as []. Numbers beyond
 * 2^53 (none are expected: sizes and offsets fit) are refused. Anything else that is not the documented shape
 * throws SV_ERR_HYPERV_BAD_OUTPUT naming the script, the record path and what was found; a failure envelope
 * becomes its coded error (host.ts CONTRACT). Never an `assert`: this is input from another process.
 */
import { SvError, type SvErrorCode } from '../../errors/index.js';
import type {
  HvBackupService, HvCheckpoint, HvDisk, HvDiskChanges, HvReferencePoint, HvVm, HvVmState,
} from './host.js';

type Json = unknown;

class Reader {
  constructor(readonly script: string) {}

  bad(path: string, expected: string, found: Json): SvError {
    const shown = found === undefined ? 'nothing' : JSON.stringify(found)?.slice(0, 120) ?? String(found);
    return new SvError('SV_ERR_HYPERV_BAD_OUTPUT', `${this.script}: output ${path}: expected ${expected}, found ${shown}`, { script: this.script, path, expected });
  }

  obj(v: Json, path: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw this.bad(path, 'an object', v);
    return v as Record<string, Json>;
  }

  str(o: Record<string, Json>, key: string, path: string): string {
    const v = o[key];
    if (typeof v !== 'string') throw this.bad(`${path}.${key}`, 'a string', v);
    return v;
  }

  num(o: Record<string, Json>, key: string, path: string, min = 0): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw this.bad(`${path}.${key}`, `an integer >= ${min}`, v);
    return v;
  }

  bool(o: Record<string, Json>, key: string, path: string): boolean {
    const v = o[key];
    if (typeof v !== 'boolean') throw this.bad(`${path}.${key}`, 'true or false', v);
    return v;
  }

  oneOf<T extends string>(o: Record<string, Json>, key: string, path: string, allowed: readonly T[]): T {
    const v = o[key];
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw this.bad(`${path}.${key}`, `one of ${allowed.join(', ')}`, v);
    return v as T;
  }

  /** An array, with PowerShell 5.1's unwrapping undone (lone object → [object], null → []). */
  arr(v: Json, path: string): Json[] {
    if (v === null || v === undefined) return [];
    if (Array.isArray(v)) return v;
    if (typeof v === 'object') return [v];
    throw this.bad(path, 'an array', v);
  }

  list<T>(v: Json, path: string, each: (item: Json, path: string) => T): T[] {
    return this.arr(v, path).map((x, i) => each(x, `${path}[${i}]`));
  }
}

const FAILURE_CODES: Record<string, SvErrorCode> = {
  'vm-not-found': 'SV_ERR_HYPERVISOR_VM_NOT_FOUND',
  'rct-invalid': 'SV_ERR_HYPERV_RCT_INVALID',
  job: 'SV_ERR_HYPERV_JOB_FAILED',
  host: 'SV_ERR_HYPERV_HOST',
};

/** The `data` of a script's envelope; a failure envelope is thrown as its coded error. */
export function parseEnvelope(script: string, text: string): Json {
  const r = new Reader(script);
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (err) {
    throw new SvError('SV_ERR_HYPERV_BAD_OUTPUT', `${script}: output is not JSON: ${(err as Error).message} (${JSON.stringify(text.slice(0, 120))})`, { script, path: '$' }, { cause: err });
  }
  const env = r.obj(doc, '$');
  if (env.ok === true) {
    if (!('data' in env)) throw r.bad('$.data', 'the result', undefined);
    return env.data;
  }
  if (env.ok !== false) throw r.bad('$.ok', 'true or false', env.ok);
  const e = r.obj(env.error, '$.error');
  const kind = r.oneOf(e, 'kind', '$.error', Object.keys(FAILURE_CODES));
  const message = r.str(e, 'message', '$.error');
  const details: Record<string, unknown> = { script };
  for (const k of ['returnValue', 'errorCode'] as const) if (typeof e[k] === 'number') details[k] = e[k];
  throw new SvError(FAILURE_CODES[kind]!, `${script}: ${message}`, details);
}

const STATES: readonly HvVmState[] = ['Running', 'Off', 'Saved', 'Paused', 'Migrating', 'Other'];
const GROUP_STATES = ['Online', 'Offline', 'Failed', 'PartialOnline', 'Pending', 'Unknown'] as const;

function disk(r: Reader, v: Json, p: string): HvDisk {
  const o = r.obj(v, p);
  return {
    controllerType: r.oneOf(o, 'controllerType', p, ['SCSI', 'IDE'] as const),
    controllerNumber: r.num(o, 'controllerNumber', p),
    controllerLocation: r.num(o, 'controllerLocation', p),
    path: r.str(o, 'path', p),
    basePath: r.str(o, 'basePath', p),
    format: r.oneOf(o, 'format', p, ['VHDX', 'VHD', 'PassThrough'] as const),
    virtualSize: r.num(o, 'virtualSize', p),
    diskIdentifier: r.str(o, 'diskIdentifier', p),
  };
}

function backup(r: Reader, v: Json, p: string): HvBackupService {
  const o = r.obj(v, p);
  return {
    enabled: r.bool(o, 'enabled', p),
    responding: r.bool(o, 'responding', p),
    guestProblems: r.list(o.guestProblems, `${p}.guestProblems`, (x, q) => {
      if (typeof x !== 'string') throw r.bad(q, 'a string', x);
      return x;
    }),
  };
}

function vm(r: Reader, v: Json, p: string): HvVm {
  const o = r.obj(v, p);
  const generation = r.num(o, 'generation', p, 1);
  if (generation !== 1 && generation !== 2) throw r.bad(`${p}.generation`, '1 or 2', generation);
  const version = r.str(o, 'configurationVersion', p);
  if (!/^\d+\.\d+$/u.test(version)) throw r.bad(`${p}.configurationVersion`, 'a version "major.minor"', version);
  let cluster: HvVm['cluster'] = null;
  if (o.cluster !== null && o.cluster !== undefined) {
    const c = r.obj(o.cluster, `${p}.cluster`);
    cluster = { ownerNode: r.str(c, 'ownerNode', `${p}.cluster`), groupState: r.oneOf(c, 'groupState', `${p}.cluster`, GROUP_STATES) };
  }
  return {
    id: r.str(o, 'id', p),
    name: r.str(o, 'name', p),
    state: r.oneOf(o, 'state', p, STATES),
    generation,
    configurationVersion: version,
    backup: backup(r, o.backup, `${p}.backup`),
    disks: r.list(o.disks, `${p}.disks`, (x, q) => disk(r, x, q)),
    cluster,
    storage: r.oneOf(o, 'storage', p, ['Local', 'CSV', 'SMB'] as const),
    configurationPath: r.str(o, 'configurationPath', p),
  };
}

function rctIds(r: Reader, v: Json, p: string): Array<{ diskIdentifier: string; rctId: string }> {
  return r.list(v, p, (x, q) => {
    const o = r.obj(x, q);
    return { diskIdentifier: r.str(o, 'diskIdentifier', q), rctId: r.str(o, 'rctId', q) };
  });
}

function checkpoint(r: Reader, v: Json, p: string): HvCheckpoint {
  const o = r.obj(v, p);
  return {
    id: r.str(o, 'id', p),
    vmId: r.str(o, 'vmId', p),
    name: r.str(o, 'name', p),
    kind: r.oneOf(o, 'kind', p, ['Recovery', 'Standard'] as const),
    created: r.str(o, 'created', p),
    frozen: r.list(o.frozen, `${p}.frozen`, (x, q) => {
      const f = r.obj(x, q);
      return { diskIdentifier: r.str(f, 'diskIdentifier', q), path: r.str(f, 'path', q) };
    }),
  };
}

function referencePoint(r: Reader, v: Json, p: string): HvReferencePoint {
  const o = r.obj(v, p);
  return { id: r.str(o, 'id', p), vmId: r.str(o, 'vmId', p), name: r.str(o, 'name', p), created: r.str(o, 'created', p), rctIds: rctIds(r, o.rctIds, `${p}.rctIds`) };
}

export function parseVms(script: string, data: Json): HvVm[] {
  const r = new Reader(script);
  return r.list(data, '$.data', (x, p) => vm(r, x, p));
}

export function parseCheckpoints(script: string, data: Json): HvCheckpoint[] {
  const r = new Reader(script);
  return r.list(data, '$.data', (x, p) => checkpoint(r, x, p));
}

export function parseCheckpoint(script: string, data: Json): HvCheckpoint {
  return checkpoint(new Reader(script), data, '$.data');
}

export function parseReferencePoints(script: string, data: Json): HvReferencePoint[] {
  const r = new Reader(script);
  return r.list(data, '$.data', (x, p) => referencePoint(r, x, p));
}

export function parseReferencePoint(script: string, data: Json): HvReferencePoint {
  return referencePoint(new Reader(script), data, '$.data');
}

/** GetVirtualDiskChanges: ranges inside the asked window, in order, not overlapping; processed within the window. */
export function parseDiskChanges(script: string, data: Json, offset: number, length: number): HvDiskChanges {
  const r = new Reader(script);
  const o = r.obj(data, '$.data');
  const processed = r.num(o, 'processedByteLength', '$.data');
  if (processed > length) throw r.bad('$.data.processedByteLength', `at most the ${length} bytes asked`, processed);
  let end = offset;
  const ranges = r.list(o.ranges, '$.data.ranges', (x, q) => {
    const g = r.obj(x, q);
    const off = r.num(g, 'offset', q);
    const len = r.num(g, 'length', q, 1);
    if (off < end || off + len > offset + processed) throw r.bad(q, `a range in order inside [${end}, ${offset + processed})`, x);
    end = off + len;
    return [off, len] as const;
  });
  return { ranges, processedByteLength: processed };
}

export function parseBoolean(script: string, data: Json): boolean {
  const r = new Reader(script);
  return r.bool(r.obj(data, '$.data'), 'value', '$.data');
}

export function parseStrings(script: string, data: Json): string[] {
  const r = new Reader(script);
  // PowerShell 5.1 prints a one-element array as its element: a bare string is a list of one.
  return r.list(typeof data === 'string' ? [data] : data, '$.data', (x, q) => {
    if (typeof x !== 'string') throw r.bad(q, 'a string', x);
    return x;
  });
}

export function parseString(script: string, data: Json): string {
  const r = new Reader(script);
  return r.str(r.obj(data, '$.data'), 'value', '$.data');
}
