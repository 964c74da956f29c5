/**
 * Encoders of the VHDX structures the writer (and tests) produce, from the same declarations the reader checks
 * (layout.ts): file identifier, header, region table, metadata region, parent locator, BAT entry, log entry.
 * Checksums (CRC-32C, checksum field counted as zero) are filled in here.
 */
import { crc32c, crc32cWithZeroedField } from '../crc32c.js';
import { guidBytes } from './guid.js';
import {
  BAT_OFFSET_SHIFT, DATA_DESCRIPTOR, DATA_SECTOR, FILE_IDENTIFIER, FILE_PARAMETERS, FILE_PARAM_HAS_PARENT,
  FILE_PARAM_LEAVE_BLOCKS_ALLOCATED, GUIDS, HEADER, LOGICAL_SECTOR_SIZE, LOG_DESCRIPTOR_SIZE, LOG_ENTRY_HEADER, LOG_SECTOR_SIZE,
  METADATA_TABLE_ENTRY, METADATA_TABLE_HEADER, METADATA_TABLE_SIZE, META_FLAG_IS_REQUIRED, META_FLAG_IS_VIRTUAL_DISK, MiB,
  PAGE83_DATA, PARENT_LOCATOR_ENTRY, PARENT_LOCATOR_HEADER, PHYSICAL_SECTOR_SIZE, REGION_FLAG_REQUIRED, REGION_TABLE_ENTRY,
  REGION_TABLE_HEADER, REGION_TABLE_SIZE, SIG_DATA, SIG_DESC, SIG_FILE, SIG_HEADER, SIG_LOG_ENTRY, SIG_METADATA, SIG_REGION,
  SIG_ZERO, VIRTUAL_DISK_SIZE, ZERO_DESCRIPTOR,
} from './layout.js';

export function buildFileIdentifier(creator: string): Buffer {
  return FILE_IDENTIFIER.encode({ signature: SIG_FILE, creator: Buffer.from(creator.slice(0, 255), 'utf16le') });
}

export interface HeaderFields {
  readonly sequenceNumber: bigint;
  readonly fileWriteGuid: string;
  readonly dataWriteGuid: string;
  readonly logGuid: string;
  readonly logLength: number;
  readonly logOffset: number;
}

export function buildHeader(h: HeaderFields): Buffer {
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64LE(h.sequenceNumber);
  const buf = HEADER.encode({
    signature: SIG_HEADER, checksum: 0, sequenceNumber: seq,
    fileWriteGuid: guidBytes(h.fileWriteGuid), dataWriteGuid: guidBytes(h.dataWriteGuid), logGuid: guidBytes(h.logGuid),
    logVersion: 0, version: 1, logLength: h.logLength, logOffset: h.logOffset,
  });
  buf.writeUInt32LE(crc32cWithZeroedField(buf, HEADER.fields.checksum.offset, 4), HEADER.fields.checksum.offset);
  return buf;
}

export interface RegionSpec {
  readonly guid: string;
  readonly fileOffset: number;
  readonly length: number;
  readonly required: boolean;
}

export function buildRegionTable(regions: readonly RegionSpec[]): Buffer {
  const buf = Buffer.alloc(REGION_TABLE_SIZE);
  REGION_TABLE_HEADER.encode({ signature: SIG_REGION, checksum: 0, entryCount: regions.length, reserved: 0 }, buf);
  regions.forEach((r, i) => REGION_TABLE_ENTRY.encode({
    guid: guidBytes(r.guid), fileOffset: r.fileOffset, length: r.length, flags: r.required ? REGION_FLAG_REQUIRED : 0,
  }, buf, REGION_TABLE_HEADER.size + i * REGION_TABLE_ENTRY.size));
  buf.writeUInt32LE(crc32c(buf), REGION_TABLE_HEADER.fields.checksum.offset);
  return buf;
}

export function buildParentLocator(entries: ReadonlyMap<string, string> | readonly (readonly [string, string])[]): Buffer {
  const list = [...entries];
  const tableEnd = PARENT_LOCATOR_HEADER.size + list.length * PARENT_LOCATOR_ENTRY.size;
  const strings: Buffer[] = [];
  let at = tableEnd;
  const table = Buffer.alloc(tableEnd);
  PARENT_LOCATOR_HEADER.encode({ locatorType: guidBytes(GUIDS.vhdxParentLocatorType), reserved: 0, keyValueCount: list.length }, table);
  list.forEach(([k, v], i) => {
    const kb = Buffer.from(k, 'utf16le');
    const vb = Buffer.from(v, 'utf16le');
    PARENT_LOCATOR_ENTRY.encode({ keyOffset: at, valueOffset: at + kb.length, keyLength: kb.length, valueLength: vb.length }, table,
      PARENT_LOCATOR_HEADER.size + i * PARENT_LOCATOR_ENTRY.size);
    strings.push(kb, vb);
    at += kb.length + vb.length;
  });
  return Buffer.concat([table, ...strings]);
}

export interface MetadataSpec {
  readonly blockSize: number;
  readonly leaveBlocksAllocated: boolean;
  readonly virtualSize: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly page83: string;
  /** Present for a differencing disk (HasParent is set). */
  readonly parentLocator?: Buffer;
}

/** The whole metadata region (`regionLength` bytes): table at 0, items from 64 KiB. */
export function buildMetadataRegion(m: MetadataSpec, regionLength = 1 * MiB): Buffer {
  const buf = Buffer.alloc(regionLength);
  const vd = META_FLAG_IS_VIRTUAL_DISK | META_FLAG_IS_REQUIRED;
  const items: [string, Buffer, number][] = [
    [GUIDS.fileParameters, FILE_PARAMETERS.encode({
      blockSize: m.blockSize,
      flags: (m.leaveBlocksAllocated ? FILE_PARAM_LEAVE_BLOCKS_ALLOCATED : 0) | (m.parentLocator ? FILE_PARAM_HAS_PARENT : 0),
    }), META_FLAG_IS_REQUIRED],
    [GUIDS.virtualDiskSize, VIRTUAL_DISK_SIZE.encode({ virtualDiskSize: m.virtualSize }), vd],
    [GUIDS.page83Data, PAGE83_DATA.encode({ page83Data: guidBytes(m.page83) }), vd],
    [GUIDS.logicalSectorSize, LOGICAL_SECTOR_SIZE.encode({ logicalSectorSize: m.logicalSectorSize }), vd],
    [GUIDS.physicalSectorSize, PHYSICAL_SECTOR_SIZE.encode({ physicalSectorSize: m.physicalSectorSize }), vd],
  ];
  if (m.parentLocator) items.push([GUIDS.parentLocator, m.parentLocator, META_FLAG_IS_REQUIRED]);
  METADATA_TABLE_HEADER.encode({ signature: SIG_METADATA, entryCount: items.length }, buf);
  let at = METADATA_TABLE_SIZE;
  items.forEach(([guid, data, flags], i) => {
    METADATA_TABLE_ENTRY.encode({ itemId: guidBytes(guid), offset: at, length: data.length, flags, reserved2: 0 }, buf,
      METADATA_TABLE_HEADER.size + i * METADATA_TABLE_ENTRY.size);
    data.copy(buf, at);
    at += Math.ceil(data.length / 8) * 8;
  });
  return buf;
}

/** One BAT entry value: state and file offset (a multiple of 1 MiB). */
export function writeBatEntry(bat: Buffer, entry: number, state: number, fileOffset: number): void {
  const mb = fileOffset / MiB;
  const lo = ((mb % 4096) * 2 ** BAT_OFFSET_SHIFT + state) >>> 0;
  bat.writeUInt32LE(lo, entry * 8);
  bat.writeUInt32LE(Math.floor(mb / 4096), entry * 8 + 4);
}

export type LogDescriptorSpec =
  | { readonly kind: 'data'; readonly fileOffset: number; readonly bytes: Buffer }
  | { readonly kind: 'zero'; readonly fileOffset: number; readonly length: number };

export interface LogEntrySpec {
  readonly sequenceNumber: bigint;
  readonly tail: number;
  readonly logGuid: string;
  readonly flushedFileOffset: number;
  readonly lastFileOffset: number;
  readonly descriptors: readonly LogDescriptorSpec[];
}

/** A complete log entry (header, descriptors, data sectors), checksummed. */
export function buildLogEntry(e: LogEntrySpec): Buffer {
  const descSectors = Math.ceil((LOG_ENTRY_HEADER.size + e.descriptors.length * LOG_DESCRIPTOR_SIZE) / LOG_SECTOR_SIZE);
  const dataCount = e.descriptors.filter((d) => d.kind === 'data').length;
  const buf = Buffer.alloc((descSectors + dataCount) * LOG_SECTOR_SIZE);
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64LE(e.sequenceNumber);
  LOG_ENTRY_HEADER.encode({
    signature: SIG_LOG_ENTRY, checksum: 0, entryLength: buf.length, tail: e.tail, sequenceNumber: seq,
    descriptorCount: e.descriptors.length, reserved: 0, logGuid: guidBytes(e.logGuid),
    flushedFileOffset: e.flushedFileOffset, lastFileOffset: e.lastFileOffset,
  }, buf);
  let sector = descSectors;
  e.descriptors.forEach((d, i) => {
    const at = LOG_ENTRY_HEADER.size + i * LOG_DESCRIPTOR_SIZE;
    if (d.kind === 'zero') {
      ZERO_DESCRIPTOR.encode({ signature: SIG_ZERO, reserved: 0, zeroLength: d.length, fileOffset: d.fileOffset, sequenceNumber: seq }, buf, at);
      return;
    }
    DATA_DESCRIPTOR.encode({
      signature: SIG_DESC, trailingBytes: d.bytes.subarray(4092, 4096), leadingBytes: d.bytes.subarray(0, 8),
      fileOffset: d.fileOffset, sequenceNumber: seq,
    }, buf, at);
    DATA_SECTOR.encode({
      signature: SIG_DATA, sequenceHigh: Number(e.sequenceNumber >> 32n), data: d.bytes.subarray(8, 4092),
      sequenceLow: Number(e.sequenceNumber & 0xffffffffn),
    }, buf, sector * LOG_SECTOR_SIZE);
    sector++;
  });
  buf.writeUInt32LE(crc32c(buf), LOG_ENTRY_HEADER.fields.checksum.offset);
  return buf;
}
