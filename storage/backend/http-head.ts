/**
 * The head of an HTTP/1.1 response, as the S3 backend's ranged GETs (s3-get.ts) read it off the socket:
 *
 *   HTTP/1.1 206 Partial Content\r\n      status line: version, three-digit status, reason (ignored)
 *   Content-Length: 8388608\r\n           header lines: token ":" value (names kept lower-case)
 *   Content-Range: bytes 0-8388607/67108864\r\n
 *   \r\n                                  end of the head; the body follows
 *
 * Only what those GETs need: the status, the headers by lower-case name (a repeated header's values joined with
 * ", ", as RFC 9110 allows for lists; a repeated Content-Length must repeat the same value), where the body
 * starts. A head longer than HEAD_MAX, a bad status line, a header line without a token name and a colon, an
 * obsolete folded line or a control character in a value is hostile or broken input: SV_ERR_BACKEND_IO naming
 * the endpoint, the byte offset and what was found (a truncated dump, escaped). Bytes are decoded as latin1
 * (what HTTP/1.1 heads are), never as UTF-8.
 */
import { SvError } from '../../src/errors/index.js';

/** The longest response head read (status line and headers); S3 servers send well under 2 KiB. */
export const HEAD_MAX = 64 * 1024;

export interface ResponseHead {
  /** 1 (HTTP/1.1 and later minor versions) or 0 (HTTP/1.0). */
  readonly minor: number;
  readonly status: number;
  /** Header values by lower-case name (see the top comment for repeats). */
  readonly headers: ReadonlyMap<string, string>;
  /** Bytes of the head, the final CRLFCRLF included: the body starts there. */
  readonly length: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/u;
const STATUS = /^HTTP\/1\.(\d) (\d{3})(?: [^\0-\x08\x0a-\x1f\x7f]*)?$/u;
const CTL = /[\0-\x08\x0a-\x1f\x7f]/u;

function bad(where: string, at: number, what: string, text: string): SvError {
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
  return new SvError('SV_ERR_BACKEND_IO', `${where}: the server's HTTP response is malformed at byte ${at}: ${what} (found ${shown})`, { where, offset: at });
}

/** Offset of the first CRLFCRLF in buf[0, end), or -1. */
function headEnd(buf: Uint8Array, end: number): number {
  for (let i = buf.indexOf(13); i >= 0 && i + 3 < end; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * The response head at the start of buf[0, end), or null when it is not complete yet (read more and call
 * again). Throws SV_ERR_BACKEND_IO when it is malformed or longer than HEAD_MAX. `where` names the server and
 * request in messages (never credentials).
 */
export function parseResponseHead(buf: Uint8Array, end: number, where: string): ResponseHead | null {
  const stop = headEnd(buf, Math.min(end, buf.length));
  if (stop < 0) {
    if (end >= HEAD_MAX) throw bad(where, 0, `no end of the response head within ${HEAD_MAX} bytes`, Buffer.from(buf.subarray(0, 80)).toString('latin1'));
    return null;
  }
  if (stop + 4 > HEAD_MAX) throw bad(where, 0, `a response head over ${HEAD_MAX} bytes`, '');
  const text = Buffer.from(buf.buffer, buf.byteOffset, stop).toString('latin1');
  const lines = text.split('\r\n');
  const first = STATUS.exec(lines[0]!);
  if (!first) throw bad(where, 0, 'not an HTTP/1.x status line', lines[0]!);
  const headers = new Map<string, string>();
  let at = lines[0]!.length + 2;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw bad(where, at, 'a header line without a name and a colon (or a folded line)', line);
    const value = line.slice(colon + 1).trim();
    if (CTL.test(value)) throw bad(where, at, `a control character in header ${name}`, line);
    const key = name.toLowerCase();
    const had = headers.get(key);
    if (had !== undefined && key === 'content-length' && had !== value) throw bad(where, at, 'two different Content-Length values', line);
    headers.set(key, had === undefined || key === 'content-length' ? value : `${had}, ${value}`);
    at += line.length + 2;
  }
  return { minor: Number(first[1]), status: Number(first[2]), headers, length: stop + 4 };
}

/** The Content-Length of a head: a safe integer, or null when absent; SV_ERR_BACKEND_IO when not digits. */
export function contentLength(head: ResponseHead, where: string): number | null {
  const v = head.headers.get('content-length');
  if (v === undefined) return null;
  const n = /^\d{1,15}$/u.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw bad(where, 0, 'a Content-Length that is not a byte count', v);
  return n;
}
