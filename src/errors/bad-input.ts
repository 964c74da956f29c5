/**
 * One way to report bad binary input (disk image formats, partition tables, ...): the file, the structure, the
 * offset, what was expected and what was found, in the message and in the details (so callers and the API can
 * show them).
 */
import { SvError, type SvErrorCode } from './index.js';

export function badInput(
  code: SvErrorCode,
  path: string,
  structure: string,
  offset: number,
  expected: string | number,
  found: string | number,
): SvError {
  return new SvError(code, `${path}: ${structure} at offset ${offset}: expected ${expected}, found ${found}`, {
    path, structure, offset, expected, found,
  });
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Printable form of a signature field (non-printable bytes escaped). */
export function shownSignature(s: string): string {
  return JSON.stringify(s.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}
