/**
 * Shape checks and naming of disk source references (types.ts). References come from JSON (the appliance's
 * model, the API, the engine thread's messages, an agent), so every field is checked before an opener sees it.
 */
import { basename } from 'node:path';
import { SvError } from '../errors/index.js';
import type { DiskSourceRef } from './types.js';

const FORMATS = ['vhd', 'vhdx', 'raw'];

function bad(field: string, why: string, ref: unknown): never {
  throw new SvError('SV_ERR_SOURCE_BAD_REF', `disk source reference: ${field} ${why}`, { field, ref: safeShow(ref) });
}

function safeShow(ref: unknown): unknown {
  try {
    const s = JSON.stringify(ref);
    return s === undefined ? String(ref) : s.length > 500 ? `${s.slice(0, 500)}…` : JSON.parse(s);
  } catch {
    return `(${typeof ref})`;
  }
}

function str(o: Record<string, unknown>, key: string, ref: unknown, optional = false): void {
  const v = o[key];
  if (v === undefined && optional) return;
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096 || v.includes('\0')) bad(key, 'must be a non-empty string', ref);
}

function int(o: Record<string, unknown>, key: string, ref: unknown, min: number): void {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) bad(key, `must be an integer ≥ ${min}`, ref);
}

/** Throws SV_ERR_SOURCE_BAD_REF unless `ref` is a well-formed DiskSourceRef. */
export function checkSourceRef(ref: unknown): asserts ref is DiskSourceRef {
  if (typeof ref !== 'object' || ref === null || Array.isArray(ref)) bad('reference', 'must be an object', ref);
  const o = ref as Record<string, unknown>;
  switch (o.kind) {
    case 'file':
      str(o, 'path', ref);
      if (o.format !== undefined && o.format !== null && !FORMATS.includes(o.format as string)) bad('format', `must be one of ${FORMATS.join(', ')}`, ref);
      if (o.roots !== undefined && (!Array.isArray(o.roots) || o.roots.some((r) => typeof r !== 'string' || r.length === 0))) bad('roots', 'must be a list of paths', ref);
      return;
    case 'nbd':
      str(o, 'socket', ref);
      if (typeof o.exportName !== 'string' || o.exportName.length > 4096) bad('exportName', 'must be a string', ref);
      str(o, 'name', ref);
      str(o, 'bitmapContext', ref, true);
      if (o.direct !== undefined) {
        const d = o.direct as Record<string, unknown>;
        if (typeof d !== 'object' || d === null || Array.isArray(d) || Object.keys(d).length !== 2) bad('direct', 'must be {path, cowExport}', ref);
        str(d, 'path', ref);
        str(d, 'cowExport', ref);
        if (!(d.path as string).startsWith('/')) bad('direct.path', 'must be an absolute path', ref);
      }
      return;
    case 'agent':
      str(o, 'agentId', ref);
      str(o, 'session', ref);
      int(o, 'disk', ref, 0);
      str(o, 'name', ref);
      int(o, 'virtualSize', ref, 0);
      return;
    default:
      bad('kind', `${typeof o.kind === 'string' ? JSON.stringify(o.kind.slice(0, 40)) : `a ${o.kind === null ? 'null' : typeof o.kind}`} is not a disk source kind (file, nbd, agent)`, ref);
  }
}

/** The name a point records for this disk: the file's base name, or the name the reference carries. */
export function sourceName(ref: DiskSourceRef): string {
  return ref.kind === 'file' ? basename(ref.path) : ref.name;
}
