/**
 * The HTTP Range request header (RFC 9110 §14.2), for downloads: one range of bytes of a representation of
 * known length. `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes) are honoured; a header that does not
 * parse, names another unit, or asks for several ranges is ignored (the answer is the whole representation,
 * 200, as RFC 9110 allows); a single range that starts at or past the end, or an empty suffix, is unsatisfiable
 * (416 with `Content-Range: bytes *\/length`).
 */

export type RangeRequest =
  | { readonly kind: 'none' }
  | { readonly kind: 'unsatisfiable' }
  /** Bytes [start, end], inclusive. */
  | { readonly kind: 'range'; readonly start: number; readonly end: number };

const SINGLE = /^bytes[ \t]*=[ \t]*(\d*)-(\d*)[ \t]*$/i;

export function parseRange(header: string | undefined, length: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const m = SINGLE.exec(header);
  if (!m) return { kind: 'none' };
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return { kind: 'none' };
  // Digit runs past 2^53 become large floats: still ordered right against `length` (start past the end, end clipped).
  if (first === '') {
    const n = Number(last);
    if (n === 0 || length === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return { kind: 'none' }; // invalid: ignored
  if (start >= length) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end: last === '' ? length - 1 : Math.min(Number(last), length - 1) };
}
