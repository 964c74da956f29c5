/**
 * The tar headers `files get --tar` writes: POSIX ustar (512-byte header blocks, data padded to 512 bytes, two
 * zero blocks at the end) with a pax extended header ('x') in front of an entry whose path or link target is
 * not short ASCII, whose size does not fit 11 octal digits, or whose times have sub-second parts.
 *
 * ustar header (POSIX.1-2001), offsets in bytes:
 *     0 100 name        257   6 magic "ustar\0"
 *   100   8 mode        263   2 version "00"
 *   108   8 uid         265  32 uname
 *   116   8 gid         297  32 gname
 *   124  12 size        329   8 devmajor
 *   136  12 mtime       337   8 devminor
 *   148   8 chksum      345 155 prefix (unused here: long paths go to pax)
 *   156   1 typeflag ('0' file, '2' symlink, '5' directory, 'x' pax)
 *   157 100 linkname
 * Numbers are octal ASCII, NUL-terminated. The checksum is the byte sum of the header with the checksum field
 * read as eight spaces, written as six octal digits, NUL, space.
 * pax record: "<len> <key>=<value>\n" where <len> counts the whole record in bytes (its own digits included).
 */
export const BLOCK = 512;

export type TarType = 'file' | 'directory' | 'symlink';

export interface TarEntry {
  /** '/'-separated relative path (components already escaped); directories without a trailing '/'. */
  readonly path: string;
  readonly type: TarType;
  readonly size: number;
  readonly mode: number;
  /** Milliseconds since the epoch. */
  readonly mtime: number;
  readonly atime?: number;
  readonly linkname?: string;
}

const ASCII_RE = /^[\x20-\x7e]*$/;

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(`${Math.max(0, Math.floor(value)).toString(8).padStart(width - 1, '0')}\0`, offset, width, 'latin1');
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  let digits = String(n).length;
  while (String(n + digits).length !== digits) digits++;
  return `${n + digits}${body}`;
}

function seconds(ms: number): string {
  const s = Math.floor(ms / 1000);
  const frac = ms - s * 1000;
  return frac ? `${s}.${String(frac).padStart(3, '0')}` : String(s);
}

function header(name: string, type: string, size: number, mode: number, mtimeMs: number, linkname = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, mode & 0o7777);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size < 0o77777777777 ? size : 0);
  octal(h, 136, 12, Math.min(0o77777777777, Math.max(0, mtimeMs / 1000)));
  h.write(type, 156, 1, 'latin1');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  h.write('root', 265, 32, 'latin1');
  h.write('root', 297, 32, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header block(s) of an entry: a pax header first when needed, then the ustar header. */
export function entryHeader(e: TarEntry): Buffer {
  const name = e.type === 'directory' ? `${e.path}/` : e.path;
  const link = e.linkname ?? '';
  const pax: string[] = [];
  if (!ASCII_RE.test(name) || Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
  if (!ASCII_RE.test(link) || Buffer.byteLength(link) > 100) pax.push(paxRecord('linkpath', link));
  if (e.size >= 0o77777777777) pax.push(paxRecord('size', String(e.size)));
  if (e.mtime % 1000 !== 0 || e.mtime < 0 || e.mtime / 1000 >= 0o77777777777) pax.push(paxRecord('mtime', seconds(e.mtime)));
  if (pax.length && e.atime !== undefined) pax.push(paxRecord('atime', seconds(e.atime)));
  const type = e.type === 'file' ? '0' : e.type === 'directory' ? '5' : '2';
  const size = e.type === 'file' ? e.size : 0;
  const ustar = header(ASCII_RE.test(name) ? name.slice(0, 100) : 'pax-named-entry', type, size, e.mode, e.mtime, ASCII_RE.test(link) ? link.slice(0, 100) : '');
  if (!pax.length) return ustar;
  const body = Buffer.from(pax.join(''), 'utf8');
  return Buffer.concat([header('PaxHeader', 'x', body.length, 0o644, e.mtime), body, padding(body.length), ustar]);
}

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
