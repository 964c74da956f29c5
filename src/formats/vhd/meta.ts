/**
 * Parsing and validating VHD metadata: the footer (end of file, or its copy at offset 0 when the end one is
 * damaged), the dynamic disk header, the parent locators, and the virtual size rule.
 *
 * Every check names the file, the structure, the offset, what was expected and what was found. Nothing here
 * allocates in proportion to a size the file claims: structures are fixed-size, and locator data is capped.
 */
import { SvError, isSvError } from '../../errors/index.js';
import type { ImageFile } from '../file.js';
import { U64_ALL_ONES, type Decoded } from '../struct.js';
import {
  DYN_COOKIE, DYN_HEADER, DYN_HEADER_CHECKSUM_OFFSET, DYN_HEADER_SIZE, DiskType, FOOTER, FOOTER_CHECKSUM_OFFSET,
  FOOTER_COOKIE, FOOTER_SIZE, LOCATOR, LOCATOR_COUNT, LOCATOR_ENTRY_SIZE, MAX_CHS_SECTORS, Platform, SECTOR,
  vhdChecksum,
} from './structs.js';

export type Footer = Decoded<typeof FOOTER.fields>;
export type DynHeader = Decoded<typeof DYN_HEADER.fields>;

/** The reader's ceiling on a VHD's virtual size (the spec's 2040 GiB, plus slack for 2 TiB tools). */
export const READER_MAX_SIZE = 2 ** 41;
/** Block sizes accepted: powers of two from 512 B to 256 MiB (the spec's default is 2 MiB). */
export const MIN_BLOCK = 512;
export const MAX_BLOCK = 256 << 20;
/** Longest parent locator path accepted (bytes). */
const MAX_LOCATOR_BYTES = 64 << 10;

export interface FooterFound {
  readonly footer: Footer;
  /** 'end' normally; 'copy at offset 0' when the end footer was damaged and the dynamic copy was used. */
  readonly source: 'end' | 'copy at offset 0';
  readonly warnings: string[];
}

function parseFooter(path: string, buf: Buffer, offset: number): Footer {
  const f = FOOTER.decode(buf);
  if (f.cookie !== FOOTER_COOKIE) {
    throw new SvError('SV_ERR_VHD_BAD_FOOTER', `${path}: VHD footer at offset ${offset}: cookie is ${JSON.stringify(f.cookie)}, expected "conectix"`, {
      path, structure: 'VHD footer', offset, expected: FOOTER_COOKIE, found: f.cookie,
    });
  }
  const sum = vhdChecksum(buf, FOOTER_CHECKSUM_OFFSET);
  if (sum !== f.checksum) {
    throw new SvError('SV_ERR_VHD_FOOTER_CHECKSUM', `${path}: VHD footer at offset ${offset}: checksum is 0x${f.checksum.toString(16)}, computed 0x${sum.toString(16)}`, {
      path, structure: 'VHD footer', offset, expected: sum, found: f.checksum,
    });
  }
  if (f.diskType !== DiskType.fixed && f.diskType !== DiskType.dynamic && f.diskType !== DiskType.differencing) {
    throw new SvError('SV_ERR_VHD_UNSUPPORTED', `${path}: VHD footer at offset ${offset}: disk type ${f.diskType}, expected 2 (fixed), 3 (dynamic) or 4 (differencing)`, {
      path, structure: 'VHD footer', offset, expected: [2, 3, 4], found: f.diskType,
    });
  }
  if (f.currentSize > READER_MAX_SIZE) {
    throw new SvError('SV_ERR_VHD_BAD_SIZE', `${path}: VHD footer at offset ${offset}: current size ${f.currentSize} exceeds ${READER_MAX_SIZE}`, {
      path, structure: 'VHD footer', offset, expected: `<= ${READER_MAX_SIZE}`, found: f.currentSize,
    });
  }
  return f;
}

/** The footer at the end of the file; for dynamic disks whose end footer is damaged, the copy at offset 0. */
export async function readFooter(file: ImageFile): Promise<FooterFound> {
  if (file.size < FOOTER_SIZE) {
    const head = file.size >= FOOTER_COOKIE.length ? (await file.readAt(0, FOOTER_COOKIE.length, 'VHD footer copy cookie')).toString('latin1') : '';
    if (head !== FOOTER_COOKIE) {
      throw new SvError('SV_ERR_VHD_BAD_FOOTER', `${file.path}: no VHD footer: the file is ${file.size} bytes (a footer is 512) and does not start with the cookie "${FOOTER_COOKIE}"`, {
        path: file.path, structure: 'VHD footer', offset: 0, expected: FOOTER_COOKIE, fileSize: file.size,
      });
    }
    throw new SvError('SV_ERR_FORMAT_TRUNCATED', `${file.path}: ${file.size} bytes is too short for a VHD footer (512)`, {
      path: file.path, structure: 'VHD footer', offset: 0, fileSize: file.size,
    });
  }
  const endOffset = file.size - FOOTER_SIZE;
  const endBuf = await file.readAt(endOffset, FOOTER_SIZE, 'VHD footer');
  try {
    return { footer: parseFooter(file.path, endBuf, endOffset), source: 'end', warnings: [] };
  } catch (endErr) {
    if (!isSvError(endErr) || endOffset === 0) throw endErr;
    let copy: Footer;
    try {
      copy = parseFooter(file.path, await file.readAt(0, FOOTER_SIZE, 'VHD footer copy'), 0);
    } catch {
      throw endErr;
    }
    if (copy.diskType === DiskType.fixed) throw endErr;
    return {
      footer: copy,
      source: 'copy at offset 0',
      warnings: [`end footer unusable (${endErr.message}); using the footer copy at offset 0`],
    };
  }
}

export interface SizeRule {
  readonly virtualSize: number;
  readonly rule: 'current size' | 'CHS geometry';
  readonly why: string;
}

/** Creators whose images are sized by the footer's current size (Hyper-V, qemu force_size, Disk2vhd, Xen). */
const CURRENT_SIZE_CREATORS = new Set(['win ', 'qem2', 'd2v ', 'd2v\0', 'CTXS', 'tap\0']);

/**
 * The virtual size, by creator: Virtual PC (`vpc `), qemu (`qemu`) and unknown creators use the CHS geometry;
 * Hyper-V and the others above use the current size; a saturated geometry (65535/16/255) means current size.
 * A zero geometry (no CHS recorded) also falls back to the current size.
 */
export function virtualSizeOf(f: Footer): SizeRule {
  const chsSectors = f.cylinders * f.heads * f.sectorsPerTrack;
  if (CURRENT_SIZE_CREATORS.has(f.creatorApplication)) {
    return { virtualSize: f.currentSize, rule: 'current size', why: `creator ${JSON.stringify(f.creatorApplication)} sizes by current size` };
  }
  if (chsSectors === MAX_CHS_SECTORS) {
    return { virtualSize: f.currentSize, rule: 'current size', why: 'CHS geometry saturated at 65535/16/255' };
  }
  if (chsSectors === 0) {
    return { virtualSize: f.currentSize, rule: 'current size', why: 'no CHS geometry recorded' };
  }
  return {
    virtualSize: chsSectors * SECTOR,
    rule: 'CHS geometry',
    why: `creator ${JSON.stringify(f.creatorApplication)} sizes by CHS geometry ${f.cylinders}/${f.heads}/${f.sectorsPerTrack}`,
  };
}

/** The dynamic disk header at `footer.dataOffset`, checked (cookie, checksum, version, block size). */
export async function readDynHeader(file: ImageFile, footer: Footer): Promise<DynHeader> {
  const offset = footer.dataOffset;
  const where = `${file.path}: VHD dynamic disk header at offset ${offset}`;
  if (offset === U64_ALL_ONES || offset < FOOTER_SIZE || offset % SECTOR !== 0 || offset + DYN_HEADER_SIZE > file.size) {
    throw new SvError('SV_ERR_VHD_BAD_FOOTER', `${file.path}: VHD footer data offset ${offset} does not point at a dynamic disk header inside the file (size ${file.size})`, {
      path: file.path, structure: 'VHD footer', field: 'dataOffset', offset: 16, found: offset, fileSize: file.size,
    });
  }
  const buf = await file.readAt(offset, DYN_HEADER_SIZE, 'VHD dynamic disk header');
  const h = DYN_HEADER.decode(buf);
  const fail = (what: string, expected: unknown, found: unknown): never => {
    throw new SvError('SV_ERR_VHD_BAD_HEADER', `${where}: ${what}: expected ${String(expected)}, found ${String(found)}`, {
      path: file.path, structure: 'VHD dynamic disk header', offset, field: what, expected, found,
    });
  };
  if (h.cookie !== DYN_COOKIE) fail('cookie', DYN_COOKIE, JSON.stringify(h.cookie));
  const sum = vhdChecksum(buf, DYN_HEADER_CHECKSUM_OFFSET);
  if (sum !== h.checksum) {
    throw new SvError('SV_ERR_VHD_HEADER_CHECKSUM', `${where}: checksum is 0x${h.checksum.toString(16)}, computed 0x${sum.toString(16)}`, {
      path: file.path, structure: 'VHD dynamic disk header', offset, expected: sum, found: h.checksum,
    });
  }
  if (h.headerVersion >>> 16 !== 1) fail('header version', '0x0001xxxx', `0x${h.headerVersion.toString(16)}`);
  const bs = h.blockSize;
  if (bs < MIN_BLOCK || bs > MAX_BLOCK || (bs & (bs - 1)) !== 0) fail('block size', `a power of two in [${MIN_BLOCK}, ${MAX_BLOCK}]`, bs);
  if (h.tableOffset === U64_ALL_ONES || h.tableOffset >= file.size) fail('table offset', `< file size ${file.size}`, h.tableOffset);
  return h;
}

export interface Locator {
  readonly platform: string;
  readonly offset: number;
  readonly length: number;
  /** The decoded path (null for a Mac alias blob, which is not a path). */
  readonly path: string | null;
}

/** The parent locators of a differencing disk's header, decoded (W2ru/W2ku UTF-16LE, MacX file URL, Wi2r/Wi2k). */
export async function readLocators(file: ImageFile, header: DynHeader, headerOffset: number): Promise<Locator[]> {
  const out: Locator[] = [];
  for (let i = 0; i < LOCATOR_COUNT; i++) {
    const e = LOCATOR.decode(header.locators, i * LOCATOR_ENTRY_SIZE);
    if (e.platformCode === Platform.none || e.platformDataLength === 0) continue;
    const entryOffset = headerOffset + 576 + i * LOCATOR_ENTRY_SIZE;
    if (e.platformDataLength > MAX_LOCATOR_BYTES || e.platformDataOffset + e.platformDataLength > file.size) {
      throw new SvError('SV_ERR_VHD_BAD_LOCATOR', `${file.path}: VHD parent locator ${i} (entry at offset ${entryOffset}): data at ${e.platformDataOffset} of ${e.platformDataLength} bytes lies outside the file (size ${file.size}) or exceeds ${MAX_LOCATOR_BYTES} bytes`, {
        path: file.path, structure: 'VHD parent locator entry', offset: entryOffset, found: { dataOffset: e.platformDataOffset, dataLength: e.platformDataLength }, fileSize: file.size,
      });
    }
    const data = await file.readAt(e.platformDataOffset, e.platformDataLength, `VHD parent locator ${i} data`);
    out.push({ platform: e.platformCode, offset: e.platformDataOffset, length: e.platformDataLength, path: decodeLocator(file.path, e.platformCode, data, e.platformDataOffset) });
  }
  return out;
}

function decodeLocator(path: string, platform: string, data: Buffer, offset: number): string | null {
  const strip = (s: string) => s.replace(/\0+$/u, '');
  switch (platform) {
    case Platform.W2ru:
    case Platform.W2ku:
      return strip(data.toString('utf16le'));
    case Platform.Wi2r:
    case Platform.Wi2k:
      return strip(data.toString('latin1'));
    case Platform.MacX: {
      const text = strip(data.toString('utf8'));
      if (!text.startsWith('file://')) return text;
      try {
        return decodeURIComponent(text.slice('file://'.length).replace(/^localhost\//u, '/'));
      } catch (err) {
        throw new SvError('SV_ERR_VHD_BAD_LOCATOR', `${path}: VHD parent locator MacX at offset ${offset}: ${JSON.stringify(text)} is not a decodable file URL`, {
          path, structure: 'VHD parent locator data', offset, found: text,
        }, { cause: err });
      }
    }
    default:
      return null;
  }
}

/** The header's parent name (UTF-16BE, NUL-terminated). */
export function parentUnicodeName(h: DynHeader): string {
  const b = Buffer.from(h.parentUnicodeName);
  b.swap16();
  return b.toString('utf16le').replace(/\0.*$/su, '');
}
