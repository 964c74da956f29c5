/**
 * Object keys (types.ts): 1-8 segments of [A-Za-z0-9._-] separated by '/', no segment '.' or '..', no leading
 * or trailing '/'. Every backend checks keys with `checkKey` before touching anything, so a key can never name
 * a path outside the store folder or an odd S3 key.
 */
import { join } from 'node:path';
import { SvError } from '../../src/errors/index.js';
import type { Backend } from './types.js';

const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
export const MAX_KEY_SEGMENTS = 8;

/** Is `key` a well-formed object key? */
export function isValidKey(key: string): boolean {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) return false;
  const parts = key.split('/');
  if (parts.length > MAX_KEY_SEGMENTS) return false;
  return parts.every((p) => p !== '.' && p !== '..' && SEGMENT_RE.test(p));
}

/** Throws SV_ERR_BACKEND_BAD_KEY unless `key` is well formed. */
export function checkKey(key: string): string {
  if (!isValidKey(key)) {
    throw new SvError('SV_ERR_BACKEND_BAD_KEY', `${JSON.stringify(String(key).slice(0, 200))} is not a store object key (1-${MAX_KEY_SEGMENTS} segments of [A-Za-z0-9._-] separated by '/')`, { key: String(key).slice(0, 200) });
  }
  return key;
}

/** A list prefix: '' or a key prefix (its characters checked like a key's, a trailing '/' allowed). */
export function checkPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  const body = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (!isValidKey(body)) {
    throw new SvError('SV_ERR_BACKEND_BAD_KEY', `${JSON.stringify(prefix.slice(0, 200))} is not a store key prefix`, { prefix: prefix.slice(0, 200) });
  }
  return prefix;
}

export function notFound(location: string, key: string, cause?: unknown): SvError {
  return new SvError('SV_ERR_BACKEND_NOT_FOUND', `${location}: no object ${key}`, { key }, cause === undefined ? undefined : { cause });
}

export function exists(location: string, key: string): SvError {
  return new SvError('SV_ERR_BACKEND_EXISTS', `${location}: object ${key} already exists (put is create-only; the existing object is unchanged)`, { key });
}

export function shortRead(location: string, key: string, offset: number, length: number, size: number | null): SvError {
  const have = size === null ? 'the object is shorter' : `the object has ${size} bytes`;
  return new SvError('SV_ERR_BACKEND_SHORT_READ', `${location}: ${key}: asked for ${length} bytes at offset ${offset}, ${have}`, { key, offset, length, size });
}

/** How an object is named in messages: its file for an fs store (as the store always named it), else location/key. */
export function describeKey(backend: Backend, key: string): string {
  return backend.ref.kind === 'fs' ? join(backend.ref.dir, key) : `${backend.location}/${key}`;
}
