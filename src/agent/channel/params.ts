/**
 * Receipt checks for the params of every agent method (the agent does not trust what arrives on the
 * channel either): one line per method, field → kind. A missing required field, an unknown field, a wrong
 * type, a negative or unsafe integer, an over-long string → SV_ERR_AGENT_BAD_PARAMS naming the field.
 * Adding a method to AgentMethods without a line here fails to compile.
 */
import { SvError } from '../../errors/index.js';
import type { AgentMethod, AgentParams } from '../rpc.js';

type Kind = 'string' | 'uint' | 'bool' | 'reference' | 'spans' | 'json' | `enum:${string}` | `${'string' | 'uint' | 'bool'}?`;
type Spec = Readonly<Record<string, Kind>>;

const MAX_STRING = 4096;
/** Most ranges one view.spans call may carry (the appliance sends at most 1024). */
export const MAX_SPANS = 4096;
const MAX_JSON = 64 * 1024;

export const PARAM_SPECS: { readonly [M in AgentMethod]: Spec } = {
  'inventory.get': {},
  'view.open': { vmId: 'string', mode: 'enum:auto|online|offline', allowOnline: 'bool', freezeTimeoutMs: 'uint?', blockSize: 'uint?' },
  'view.extents': { session: 'string', disk: 'uint' },
  'view.changes': { session: 'string', disk: 'uint', previous: 'reference' },
  'view.range': { session: 'string', disk: 'uint', offset: 'uint', length: 'uint', blockSize: 'uint', level: 'uint', hasOld: 'bool' },
  'view.spans': { session: 'string', disk: 'uint', blockSize: 'uint', level: 'uint', hasOld: 'bool', spans: 'spans' },
  'view.read': { session: 'string', disk: 'uint', offset: 'uint', length: 'uint' },
  'view.configuration': { session: 'string' },
  'view.commit': { session: 'string' },
  'view.abort': { session: 'string' },
  'view.release': { session: 'string' },
  'share.open': { share: 'string', path: 'string' },
  'restore.open': { vmId: 'string', name: 'string', virtualSize: 'uint', format: 'enum:raw|vhdx|vhd|qcow2', into: 'string?', fileName: 'string?' },
  'restore.write': { handle: 'string', offset: 'uint' },
  'restore.close': { handle: 'string', commit: 'bool' },
  'import.open': { vmId: 'string', name: 'string' },
  'import.vm': { handle: 'string', configuration: 'json', disks: 'json' },
  'import.close': { handle: 'string', keep: 'bool' },
  'owner.claim': { vmId: 'string', takeOver: 'bool?' },
  'owner.release': { vmId: 'string' },
};

export function isAgentMethod(method: string): method is AgentMethod {
  return Object.hasOwn(PARAM_SPECS, method);
}

function fail(method: string, field: string, expected: string, got: unknown): never {
  const shown = typeof got === 'string' ? `a ${got.length}-character string` : JSON.stringify(got)?.slice(0, 60) ?? String(got);
  throw new SvError('SV_ERR_AGENT_BAD_PARAMS', `${method}: ${field} must be ${expected}, got ${shown}`, { method, field, expected });
}

function checkValue(method: string, field: string, kind: Kind, v: unknown): void {
  const base = kind.endsWith('?') ? kind.slice(0, -1) : kind;
  if (base === 'string') {
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STRING) fail(method, field, `a string of 1..${MAX_STRING} characters`, v);
  } else if (base === 'uint') {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(method, field, 'a non-negative safe integer', v);
  } else if (base === 'bool') {
    if (typeof v !== 'boolean') fail(method, field, 'a boolean', v);
  } else if (base === 'reference') {
    if (v === null) return;
    const r = v as Record<string, unknown>;
    const ok = typeof v === 'object' && !Array.isArray(v) && typeof r.id === 'string' && r.id.length <= MAX_STRING && typeof r.diskIdentity === 'string' && r.diskIdentity.length <= MAX_STRING
      && typeof r.virtualSize === 'number' && Number.isSafeInteger(r.virtualSize) && r.virtualSize >= 0 && Object.keys(r).length === 3;
    if (!ok) fail(method, field, 'null or {id, diskIdentity, virtualSize}', v);
  } else if (base === 'spans') {
    const uint = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    const ok = Array.isArray(v) && v.length >= 1 && v.length <= MAX_SPANS
      && v.every((s) => Array.isArray(s) && s.length === 2 && uint(s[0]) && uint(s[1]));
    if (!ok) fail(method, field, `a list of 1..${MAX_SPANS} [offset, length] pairs of non-negative safe integers`, v);
  } else if (base === 'json') {
    // An object or list the handler parses itself (config.ts for a configuration); here: its size only.
    const text = typeof v === 'object' && v !== null ? JSON.stringify(v) : undefined;
    if (text === undefined || text.length > MAX_JSON) fail(method, field, `a JSON object or list of at most ${MAX_JSON} characters`, v);
  } else if (base.startsWith('enum:')) {
    const allowed = base.slice(5).split('|');
    if (typeof v !== 'string' || !allowed.includes(v)) fail(method, field, `one of ${allowed.join(', ')}`, v);
  }
}

/** Check `params` for `method` (a known method); returns them typed. */
export function checkParams<M extends AgentMethod>(method: M, params: Record<string, unknown>): AgentParams<M> {
  const spec = PARAM_SPECS[method];
  for (const key of Object.keys(params)) if (!Object.hasOwn(spec, key)) fail(method, key, 'absent (unknown field)', params[key]);
  for (const [field, kind] of Object.entries(spec)) {
    const v = params[field];
    if (v === undefined) {
      if (kind.endsWith('?')) continue;
      fail(method, field, 'present', v);
    }
    checkValue(method, field, kind, v);
  }
  return params as AgentParams<M>;
}
