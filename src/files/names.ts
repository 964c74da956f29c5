/**
 * Reversible escaping of file names read from a recovery point's file systems into names that are safe as ONE
 * path component on the appliance (Linux) and on the Windows shares restores are often copied to. The scheme
 * (README "Item-level restore", docs/VOLUMES.md):
 *
 *   - '%' is the escape character and is always escaped itself, so decoding is unambiguous;
 *   - '/', '\\', NUL and the other control characters (U+0000-U+001F, U+007F) become %XX (hex of the byte);
 *   - an unpaired UTF-16 surrogate (possible in NTFS names) becomes %uXXXX;
 *   - the whole names "." and ".." become "%2E" and "%2E%2E";
 *   - a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, alone or before an extension, any case) gets
 *     its first letter escaped: "CON.txt" becomes "%43ON.txt";
 *   - a name longer than 255 bytes (UTF-8) once escaped is cut to fit and ends in "%~" + 16 hex of the SHA-256
 *     of the original name: the one case decodeName cannot undo, so writers record such names (get writes
 *     `.shadowvault-names.json` in --out mapping each shortened name to the original).
 *
 * Every other character (including ':', '*', '?', spaces, any Unicode) is kept as is. decodeName(escapeName(n))
 * === n for every name that was not shortened.
 */
import { createHash } from 'node:crypto';

export const NAME_MAX_BYTES = 255;
const DEVICE_RE = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\.|$)/i;
const HASH_MARK = '%~';

function hex2(n: number): string {
  return `%${n.toString(16).toUpperCase().padStart(2, '0')}`;
}

export interface EscapedName {
  readonly name: string;
  /** The name was cut to NAME_MAX_BYTES (not reversible by decodeName). */
  readonly shortened: boolean;
}

export function escapeName(original: string): EscapedName {
  if (original === '.') return { name: '%2E', shortened: false };
  if (original === '..') return { name: '%2E%2E', shortened: false };
  let out = '';
  for (let i = 0; i < original.length; i++) {
    const c = original.charCodeAt(i);
    if (c === 0x25 || c === 0x2f || c === 0x5c || c < 0x20 || c === 0x7f) {
      out += hex2(c);
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < original.length && original.charCodeAt(i + 1) >= 0xdc00 && original.charCodeAt(i + 1) <= 0xdfff) {
      out += original[i]! + original[i + 1]!; // a valid pair
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      out += `%u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    } else {
      out += original[i]!;
    }
  }
  if (DEVICE_RE.test(out)) out = hex2(out.charCodeAt(0)) + out.slice(1);
  if (out === '') out = '%'; // an empty name (hostile image): a lone '%' never comes out of the rules above
  if (Buffer.byteLength(out) <= NAME_MAX_BYTES) return { name: out, shortened: false };
  const tag = `${HASH_MARK}${createHash('sha256').update(original).digest('hex').slice(0, 16)}`;
  const budget = NAME_MAX_BYTES - tag.length;
  let keep = '';
  let bytes = 0;
  for (const ch of out) { // by code point: a surrogate pair stays whole
    const n = Buffer.byteLength(ch);
    if (bytes + n > budget) break;
    keep += ch;
    bytes += n;
  }
  keep = keep.replace(/%(u[0-9A-F]{0,3}|[0-9A-F]?)$/, ''); // never end inside an escape sequence
  return { name: keep + tag, shortened: true };
}

/** Undo escapeName (a shortened name decodes to its cut prefix plus the "%~hash" tag kept as is). */
export function decodeName(name: string): string {
  if (name === '%') return '';
  return name.replace(/%(u[0-9A-Fa-f]{4}|[0-9A-Fa-f]{2}|~[0-9a-f]{16}$)/g, (all, code: string) => {
    if (code.startsWith('~')) return all;
    return String.fromCharCode(parseInt(code.startsWith('u') ? code.slice(1) : code, 16));
  });
}

/** Escape each component of a '/'-separated volume path (relative result, no leading '/'). */
export function escapePath(path: string): string {
  return path.split('/').filter((p) => p !== '').map((p) => escapeName(p).name).join('/');
}
