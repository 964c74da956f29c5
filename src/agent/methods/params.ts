/**
 * Checks of the parameters an agent method receives (the appliance is trusted more than a random peer, but
 * the channel carries JSON from the network: every field is checked before use). Each failure is
 * SV_ERR_AGENT_BAD_PARAMS naming the method and the field.
 */
import { SvError } from '../../errors/index.js';

export function badParam(method: string, field: string, why: string, value?: unknown): SvError {
  return new SvError('SV_ERR_AGENT_BAD_PARAMS', `${method}: ${field} ${why}`, { method, field, value: typeof value === 'object' ? null : value ?? null });
}

export function str(method: string, field: string, v: unknown, max = 256): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw badParam(method, field, `must be a string of 1..${max} characters`, v);
  return v;
}

export function int(method: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw badParam(method, field, `must be an integer in ${min}..${max}`, v);
  return v;
}

export function bool(method: string, field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw badParam(method, field, 'must be a boolean', v);
  return v;
}

export function oneOf<T extends string>(method: string, field: string, v: unknown, values: readonly T[]): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw badParam(method, field, `must be one of ${values.join(', ')}`, v);
  return v as T;
}

export function obj(method: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badParam(method, 'params', 'must be an object');
  return v as Record<string, unknown>;
}
