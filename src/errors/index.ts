/**
 * The product's error class. Throw `new SvError(code, message, details, { cause })`; callers match on
 * `err.code`. Errors cross thread and process boundaries as `WireError` and are rebuilt with `fromWire`.
 */
import type { SvErrorCode } from './catalogue.js';
import { STATUS } from './status-table.js';

// Only the generated status table is loaded at run time; the catalogue (catalogue.ts: summaries, areas) is for
// docs, tests and types.
export type { SvErrorCode } from './catalogue.js';

export type ErrorDetails = Readonly<Record<string, unknown>>;

/** What an error looks like in JSON: API responses, worker results, `--json` output. */
export interface WireError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export class SvError extends Error {
  readonly code: SvErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: SvErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SvError';
    this.code = code;
    this.status = STATUS[code];
    this.details = details;
  }

  toWire(): WireError {
    return { code: this.code, message: this.message, details: { ...this.details } };
  }
}

export function isSvError(err: unknown): err is SvError {
  return err instanceof SvError;
}

/**
 * Does this error carry one of the given codes? Works for SvErrors, rebuilt WireErrors and foreign objects
 * alike. The only way to match a code: the codes are typed by the catalogue, so a misspelt one fails to compile.
 */
export function hasCode(err: unknown, ...codes: readonly SvErrorCode[]): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (codes as readonly string[]).includes(code);
}

/**
 * Stored block data that does not read back (a missing blob, a damaged pack or page, a payload that fails
 * its digest or does not decompress), as opposed to an I/O or programming error. The one list of them.
 */
export const STORE_DAMAGE_CODES: readonly SvErrorCode[] = [
  'SV_ERR_NATIVE_DIGEST_MISMATCH', 'SV_ERR_NATIVE_CORRUPT_PAYLOAD',
  'SV_ERR_STORE_CORRUPT_PACK', 'SV_ERR_STORE_MISSING_BLOB', 'SV_ERR_STORE_CORRUPT_PAGE',
];

/** Is this error damaged stored block data (one of STORE_DAMAGE_CODES)? */
export function isStoreDamage(err: unknown): boolean {
  return hasCode(err, ...STORE_DAMAGE_CODES);
}

/** Is this a store file unusable as its kind: `corrupt` (its own code), a bad version, or not a regular file? */
export function isDamagedFile(err: unknown, corrupt: SvErrorCode): boolean {
  return hasCode(err, corrupt, 'SV_ERR_STORE_BAD_VERSION', 'SV_ERR_STORE_FOREIGN_FILE');
}

/** Is `code` one of the catalogue's codes? */
export function isCatalogued(code: string): code is SvErrorCode {
  return Object.hasOwn(STATUS, code);
}

/** Rebuild an error that crossed a boundary; unknown codes become SV_ERR_CORE_INTERNAL keeping the text. */
export function fromWire(wire: WireError): SvError {
  if (isCatalogued(wire.code)) return new SvError(wire.code, wire.message, wire.details ?? {});
  return new SvError('SV_ERR_CORE_INTERNAL', `${wire.code}: ${wire.message}`, wire.details ?? {});
}

/** Any thrown value as a WireError: catalogued errors keep their code; system errors are classified. */
export function toWire(err: unknown): WireError {
  if (err instanceof SvError) return err.toWire();
  const sys = err as NodeJS.ErrnoException | undefined;
  if (sys && typeof sys === 'object' && typeof sys.code === 'string' && isCatalogued(sys.code)) {
    return { code: sys.code, message: String(sys.message), details: {} };
  }
  return wrapSystemError(err).toWire();
}

/** Classify an OS error: ENOSPC becomes SV_ERR_CORE_NO_SPACE, other errno errors SV_ERR_CORE_IO. */
export function wrapSystemError(err: unknown, what?: string): SvError {
  if (err instanceof SvError) return err;
  const sys = err as NodeJS.ErrnoException;
  const prefix = what ? `${what}: ` : '';
  if (sys && typeof sys === 'object' && sys.code === 'ENOSPC') {
    return new SvError('SV_ERR_CORE_NO_SPACE', `${prefix}no space left on device`, { path: sys.path ?? null }, { cause: err });
  }
  if (sys && typeof sys === 'object' && typeof sys.code === 'string' && typeof sys.errno === 'number') {
    return new SvError('SV_ERR_CORE_IO', `${prefix}${sys.message}`, { syscall: sys.syscall ?? null, path: sys.path ?? null, errno: sys.code }, { cause: err });
  }
  const text = err instanceof Error ? err.message : String(err);
  return new SvError('SV_ERR_CORE_INTERNAL', `${prefix}${text}`, {}, { cause: err });
}
