/**
 * Parsers of the VHDX header-section and metadata structures (declared in layout.ts). Each takes the bytes of
 * one structure and where they came from (file, offset), checks every field the specification constrains, and
 * returns plain values, or throws a catalogued error naming the file, the structure, the offset, what was
 * expected and what was found. Headers and region tables return a problem instead of throwing, because the
 * reader falls back to the other copy.
 */
import { SvError } from '../../errors/index.js';
import { crc32cWithZeroedField } from '../crc32c.js';
import { badInput, hex, shownSignature } from '../../errors/bad-input.js';
import { readGuid } from './guid.js';
import {
  FILE_IDENTIFIER, GUIDS, HEADER, HEADER_SECTION_SIZE, MAX_METADATA_ENTRIES, MAX_METADATA_ITEM_LENGTH, MAX_REGION_ENTRIES,
  METADATA_TABLE_ENTRY, METADATA_TABLE_HEADER, METADATA_TABLE_SIZE, META_FLAG_IS_REQUIRED, META_FLAG_IS_USER,
  META_FLAG_IS_VIRTUAL_DISK, MiB, PARENT_LOCATOR_ENTRY, PARENT_LOCATOR_HEADER, REGION_FLAG_REQUIRED, REGION_TABLE_ENTRY,
  REGION_TABLE_HEADER, REGION_TABLE_SIZE, SIG_FILE, SIG_HEADER, SIG_METADATA, SIG_REGION,
} from './layout.js';

export interface Where {
  readonly path: string;
  /** File offset of the structure's first byte. */
  readonly offset: number;
}

export interface VhdxHeader {
  readonly sequenceNumber: bigint;
  readonly fileWriteGuid: string;
  readonly dataWriteGuid: string;
  readonly logGuid: string;
  readonly logVersion: number;
  readonly version: number;
  readonly logLength: number;
  readonly logOffset: number;
}

export type Checked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: SvError };

export function parseFileIdentifier(buf: Buffer, at: Where): { creator: string } {
  if (buf.length < FILE_IDENTIFIER.size) {
    throw badInput('SV_ERR_FORMAT_TRUNCATED', at.path, FILE_IDENTIFIER.name, at.offset, `${FILE_IDENTIFIER.size} bytes`, `${buf.length}`);
  }
  const f = FILE_IDENTIFIER.decode(buf);
  if (f.signature !== SIG_FILE) {
    throw badInput('SV_ERR_VHDX_SIGNATURE', at.path, FILE_IDENTIFIER.name, at.offset, shownSignature(SIG_FILE), shownSignature(f.signature));
  }
  const creator = f.creator.toString('utf16le');
  const nul = creator.indexOf('\0');
  return { creator: nul >= 0 ? creator.slice(0, nul) : creator };
}

/** A header (4 KiB) checked per MS-VHDX 2.2.2: signature, CRC-32C, version 1, log version 0, log placement. */
export function parseHeader(buf: Buffer, at: Where): Checked<VhdxHeader> {
  const name = HEADER.name;
  const fail = (code: 'SV_ERR_VHDX_SIGNATURE' | 'SV_ERR_VHDX_CHECKSUM' | 'SV_ERR_VHDX_UNSUPPORTED' | 'SV_ERR_VHDX_NO_VALID_HEADER', field: string, expected: string | number, found: string | number): Checked<VhdxHeader> =>
    ({ ok: false, problem: badInput(code, at.path, `${name} ${field}`, at.offset + HEADER.fields[field as keyof typeof HEADER.fields].offset, expected, found) });
  if (buf.length < HEADER.size) return { ok: false, problem: badInput('SV_ERR_FORMAT_TRUNCATED', at.path, name, at.offset, `${HEADER.size} bytes`, buf.length) };
  const h = HEADER.decode(buf);
  if (h.signature !== SIG_HEADER) return fail('SV_ERR_VHDX_SIGNATURE', 'signature', shownSignature(SIG_HEADER), shownSignature(h.signature));
  const crc = crc32cWithZeroedField(buf, HEADER.fields.checksum.offset, 4, 0, HEADER.size);
  if (crc !== h.checksum) return fail('SV_ERR_VHDX_CHECKSUM', 'checksum', hex(crc), hex(h.checksum));
  if (h.version !== 1) return fail('SV_ERR_VHDX_UNSUPPORTED', 'version', 1, h.version);
  if (h.logVersion !== 0) return fail('SV_ERR_VHDX_UNSUPPORTED', 'logVersion', 0, h.logVersion);
  if (h.logLength % MiB !== 0) return fail('SV_ERR_VHDX_NO_VALID_HEADER', 'logLength', 'a multiple of 1 MiB', h.logLength);
  if (h.logOffset % MiB !== 0 || (h.logLength > 0 && h.logOffset < HEADER_SECTION_SIZE)) {
    return fail('SV_ERR_VHDX_NO_VALID_HEADER', 'logOffset', 'a multiple of 1 MiB, at least 1 MiB', h.logOffset);
  }
  return {
    ok: true,
    value: {
      sequenceNumber: h.sequenceNumber.readBigUInt64LE(0),
      fileWriteGuid: readGuid(h.fileWriteGuid),
      dataWriteGuid: readGuid(h.dataWriteGuid),
      logGuid: readGuid(h.logGuid),
      logVersion: h.logVersion,
      version: h.version,
      logLength: h.logLength,
      logOffset: h.logOffset,
    },
  };
}

export interface RegionEntry {
  readonly guid: string;
  readonly fileOffset: number;
  readonly length: number;
  readonly required: boolean;
}

/** A region table (64 KiB): signature, CRC-32C over the whole table, entry count, entry placement. */
export function parseRegionTable(buf: Buffer, at: Where): Checked<RegionEntry[]> {
  const name = REGION_TABLE_HEADER.name;
  const fail = (code: 'SV_ERR_VHDX_SIGNATURE' | 'SV_ERR_VHDX_CHECKSUM' | 'SV_ERR_VHDX_REGION_TABLE', structure: string, off: number, expected: string | number, found: string | number): Checked<RegionEntry[]> =>
    ({ ok: false, problem: badInput(code, at.path, structure, at.offset + off, expected, found) });
  if (buf.length < REGION_TABLE_SIZE) return { ok: false, problem: badInput('SV_ERR_FORMAT_TRUNCATED', at.path, 'region table', at.offset, `${REGION_TABLE_SIZE} bytes`, buf.length) };
  const h = REGION_TABLE_HEADER.decode(buf);
  if (h.signature !== SIG_REGION) return fail('SV_ERR_VHDX_SIGNATURE', `${name} signature`, 0, shownSignature(SIG_REGION), shownSignature(h.signature));
  const crc = crc32cWithZeroedField(buf, REGION_TABLE_HEADER.fields.checksum.offset, 4, 0, REGION_TABLE_SIZE);
  if (crc !== h.checksum) return fail('SV_ERR_VHDX_CHECKSUM', `${name} checksum`, 4, hex(crc), hex(h.checksum));
  if (h.entryCount > MAX_REGION_ENTRIES) return fail('SV_ERR_VHDX_REGION_TABLE', `${name} entryCount`, 8, `<= ${MAX_REGION_ENTRIES}`, h.entryCount);
  const entries: RegionEntry[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const off = REGION_TABLE_HEADER.size + i * REGION_TABLE_ENTRY.size;
    const e = REGION_TABLE_ENTRY.decode(buf, off);
    const guid = readGuid(e.guid);
    const what = `region table entry ${i} (${guid})`;
    if (e.fileOffset % MiB !== 0 || e.fileOffset < HEADER_SECTION_SIZE || !Number.isSafeInteger(e.fileOffset)) {
      return fail('SV_ERR_VHDX_REGION_TABLE', `${what} fileOffset`, off + 16, 'a multiple of 1 MiB, at least 1 MiB', e.fileOffset);
    }
    if (e.length % MiB !== 0 || e.length === 0) return fail('SV_ERR_VHDX_REGION_TABLE', `${what} length`, off + 24, 'a non-zero multiple of 1 MiB', e.length);
    if (entries.some((x) => x.guid === guid)) return fail('SV_ERR_VHDX_REGION_TABLE', `${what} guid`, off, 'each region once', 'a duplicate');
    entries.push({ guid, fileOffset: e.fileOffset, length: e.length, required: (e.flags & REGION_FLAG_REQUIRED) !== 0 });
  }
  return { ok: true, value: entries };
}

export interface MetadataEntry {
  readonly itemId: string;
  /** Offset relative to the metadata region. */
  readonly offset: number;
  readonly length: number;
  readonly isUser: boolean;
  readonly isVirtualDisk: boolean;
  readonly isRequired: boolean;
}

/** The metadata table (first 64 KiB of the metadata region, whose length is `regionLength`). */
export function parseMetadataTable(buf: Buffer, at: Where, regionLength: number): MetadataEntry[] {
  if (buf.length < METADATA_TABLE_SIZE) throw badInput('SV_ERR_FORMAT_TRUNCATED', at.path, 'metadata table', at.offset, `${METADATA_TABLE_SIZE} bytes`, buf.length);
  const h = METADATA_TABLE_HEADER.decode(buf);
  if (h.signature !== SIG_METADATA) {
    throw badInput('SV_ERR_VHDX_SIGNATURE', at.path, `${METADATA_TABLE_HEADER.name} signature`, at.offset, shownSignature(SIG_METADATA), shownSignature(h.signature));
  }
  if (h.entryCount > MAX_METADATA_ENTRIES) {
    throw badInput('SV_ERR_VHDX_METADATA', at.path, `${METADATA_TABLE_HEADER.name} entryCount`, at.offset + 10, `<= ${MAX_METADATA_ENTRIES}`, h.entryCount);
  }
  const entries: MetadataEntry[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const off = METADATA_TABLE_HEADER.size + i * METADATA_TABLE_ENTRY.size;
    const e = METADATA_TABLE_ENTRY.decode(buf, off);
    const itemId = readGuid(e.itemId);
    const what = `metadata table entry ${i} (${itemId})`;
    if (e.length === 0 ? e.offset !== 0 : e.offset < METADATA_TABLE_SIZE || e.offset + e.length > regionLength) {
      throw badInput('SV_ERR_VHDX_METADATA', at.path, `${what} offset`, at.offset + off + 16,
        e.length === 0 ? '0 for an empty item' : `64 KiB..${regionLength - e.length} (inside the metadata region)`, e.offset);
    }
    if (e.length > MAX_METADATA_ITEM_LENGTH) throw badInput('SV_ERR_VHDX_METADATA', at.path, `${what} length`, at.offset + off + 20, '<= 1 MiB', e.length);
    const isUser = (e.flags & META_FLAG_IS_USER) !== 0;
    if (entries.some((x) => x.itemId === itemId && x.isUser === isUser)) {
      throw badInput('SV_ERR_VHDX_METADATA', at.path, `${what} itemId`, at.offset + off, 'each item once', 'a duplicate');
    }
    entries.push({
      itemId, offset: e.offset, length: e.length, isUser,
      isVirtualDisk: (e.flags & META_FLAG_IS_VIRTUAL_DISK) !== 0,
      isRequired: (e.flags & META_FLAG_IS_REQUIRED) !== 0,
    });
  }
  return entries;
}

export interface ParentLocator {
  readonly locatorType: string;
  readonly entries: ReadonlyMap<string, string>;
}

/** The parent locator item (MS-VHDX 2.6.2.6): header, key/value entries, UTF-16LE strings inside the item. */
export function parseParentLocator(buf: Buffer, at: Where): ParentLocator {
  const name = PARENT_LOCATOR_HEADER.name;
  if (buf.length < PARENT_LOCATOR_HEADER.size) throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', at.path, name, at.offset, `>= ${PARENT_LOCATOR_HEADER.size} bytes`, buf.length);
  const h = PARENT_LOCATOR_HEADER.decode(buf);
  const locatorType = readGuid(h.locatorType);
  if (locatorType !== GUIDS.vhdxParentLocatorType) {
    throw badInput('SV_ERR_VHDX_UNSUPPORTED', at.path, `${name} locatorType`, at.offset, GUIDS.vhdxParentLocatorType, locatorType);
  }
  const tableEnd = PARENT_LOCATOR_HEADER.size + h.keyValueCount * PARENT_LOCATOR_ENTRY.size;
  if (tableEnd > buf.length) {
    throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', at.path, `${name} keyValueCount`, at.offset + 18, `<= ${Math.floor((buf.length - 20) / 12)} (item length ${buf.length})`, h.keyValueCount);
  }
  const entries = new Map<string, string>();
  for (let i = 0; i < h.keyValueCount; i++) {
    const off = PARENT_LOCATOR_HEADER.size + i * PARENT_LOCATOR_ENTRY.size;
    const e = PARENT_LOCATOR_ENTRY.decode(buf, off);
    const str = (o: number, len: number, field: string): string => {
      if (len === 0 || len % 2 !== 0 || o < tableEnd || o + len > buf.length) {
        throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', at.path, `parent locator entry ${i} ${field}`, at.offset + off,
          `an even, non-zero UTF-16 string inside the item (${tableEnd}..${buf.length})`, `offset ${o}, length ${len}`);
      }
      return buf.toString('utf16le', o, o + len);
    };
    const key = str(e.keyOffset, e.keyLength, 'key');
    const value = str(e.valueOffset, e.valueLength, 'value');
    if (entries.has(key)) throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', at.path, `parent locator entry ${i} key`, at.offset + off, 'each key once', JSON.stringify(key));
    entries.set(key, value);
  }
  return { locatorType, entries };
}
