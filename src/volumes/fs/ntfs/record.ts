/**
 * One MFT record (FILE): fixups applied and checked, header checked, attributes decoded (resident values
 * copied out, non-resident runlists decoded). Every offset and length is checked against the record before
 * use: an attribute overrunning the used bytes, a name or value overrunning its attribute, a runlist outside
 * its attribute are SV_ERR_FS_NTFS_BAD_ATTRIBUTE / _BAD_RUNLIST; a bad header or torn record is _BAD_RECORD.
 */
import { badInput } from '../../../errors/bad-input.js';
import type { NtfsGeometry } from './boot.js';
import { applyFixups } from './fixups.js';
import { decodeRuns, type Run } from './runlist.js';
import {
  ATTR_END, ATTR_HEADER, NON_RESIDENT_PART, RECORD_HEADER, RECORD_MAGIC, RESIDENT_PART, mftRef, utf16,
} from './structs.js';

export interface RecordAttribute {
  readonly type: number;
  readonly name: string;
  readonly flags: number;
  readonly id: number;
  /** The record this attribute was read from. */
  readonly record: number;
  /** Resident value (a view of the record's own buffer; never written). */
  readonly value?: Buffer;
  /** Non-resident: the extent's VCN range and runs; sizes are meaningful in the extent starting at VCN 0. */
  readonly nonResident?: {
    readonly startVcn: number;
    readonly lastVcn: number;
    readonly runs: Run[];
    readonly compressionUnit: number;
    readonly allocatedSize: number;
    readonly dataSize: number;
    readonly initializedSize: number;
  };
}

export interface MftRecord {
  readonly number: number;
  readonly sequence: number;
  readonly flags: number;
  readonly linkCount: number;
  /** Base record number (0 for a base record) and the sequence the reference expects. */
  readonly base: { record: number; sequence: number };
  readonly attributes: RecordAttribute[];
}

/** `buf` is the raw record (exactly recordSize bytes, owned by the caller; fixups are applied in place). */
export function parseRecord(name: string, geo: NtfsGeometry, number: number, buf: Buffer, at: number): MftRecord {
  const structure = `MFT record ${number}`;
  const bad = (what: string, offset: number, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_NTFS_BAD_RECORD', name, `${structure} ${what}`, at + offset, expected, found);
  // Hot path (every entry of a listing): fields read one by one at their declared offsets, not decode().
  const F = RECORD_HEADER.fields;
  const h = {
    magic: buf.toString('latin1', 0, 4), usaOffset: buf.readUInt16LE(F.usaOffset.offset), usaCount: buf.readUInt16LE(F.usaCount.offset),
    sequence: buf.readUInt16LE(F.sequence.offset), linkCount: buf.readUInt16LE(F.linkCount.offset),
    attrsOffset: buf.readUInt16LE(F.attrsOffset.offset), flags: buf.readUInt16LE(F.flags.offset),
    bytesUsed: buf.readUInt32LE(F.bytesUsed.offset), bytesAllocated: buf.readUInt32LE(F.bytesAllocated.offset),
    recordNumber: buf.readUInt32LE(F.recordNumber.offset),
  };
  if (h.magic !== RECORD_MAGIC) throw bad('signature', 0, JSON.stringify(RECORD_MAGIC), JSON.stringify(h.magic));
  applyFixups(buf, { name, code: 'SV_ERR_FS_NTFS_BAD_RECORD', structure, at });
  if (h.bytesAllocated !== buf.length) throw bad('allocated size', 0x1c, buf.length, h.bytesAllocated);
  if (h.bytesUsed > buf.length || h.bytesUsed < RECORD_HEADER.size) throw bad('used size', 0x18, `${RECORD_HEADER.size}..${buf.length}`, h.bytesUsed);
  if (h.attrsOffset < h.usaOffset + 2 * h.usaCount || h.attrsOffset % 8 !== 0 || h.attrsOffset + 4 > h.bytesUsed) {
    throw bad('first attribute offset', 0x14, `an 8-byte aligned offset after the update sequence array, inside ${h.bytesUsed} used bytes`, h.attrsOffset);
  }
  if (h.usaOffset >= 0x30 && h.recordNumber !== number % 0x1_0000_0000) throw bad('number', 0x2c, number, h.recordNumber);
  const attributes: RecordAttribute[] = [];
  let pos = h.attrsOffset;
  for (;;) {
    if (pos + 4 > h.bytesUsed) throw bad('attributes', pos, 'an end marker 0xffffffff inside the used bytes', 'none');
    if (buf.readUInt32LE(pos) === ATTR_END) break;
    attributes.push(parseAttribute(name, geo, number, buf, pos, h.bytesUsed, at));
    pos += buf.readUInt32LE(pos + 4);
  }
  return { number, sequence: h.sequence, flags: h.flags, linkCount: h.linkCount, base: mftRef(buf, F.baseRef.offset), attributes };
}

function parseAttribute(name: string, geo: NtfsGeometry, number: number, buf: Buffer, pos: number, used: number, at: number): RecordAttribute {
  const bad = (what: string, offset: number, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_NTFS_BAD_ATTRIBUTE', name, `MFT record ${number} attribute at ${pos} ${what}`, at + offset, expected, found);
  if (pos + ATTR_HEADER.size > used) throw bad('header', pos, `${ATTR_HEADER.size} bytes inside the used bytes`, used - pos);
  const A = ATTR_HEADER.fields;
  const a = {
    type: buf.readUInt32LE(pos), length: buf.readUInt32LE(pos + A.length.offset), nonResident: buf[pos + A.nonResident.offset]!,
    nameLength: buf[pos + A.nameLength.offset]!, nameOffset: buf.readUInt16LE(pos + A.nameOffset.offset),
    flags: buf.readUInt16LE(pos + A.flags.offset), id: buf.readUInt16LE(pos + A.id.offset),
  };
  if (a.length < ATTR_HEADER.size || a.length % 8 !== 0 || pos + a.length > used) {
    throw bad('length', pos + 4, `an 8-byte multiple inside the ${used} used bytes`, a.length);
  }
  const end = pos + a.length;
  const fixedPart = a.nonResident ? NON_RESIDENT_PART.size : RESIDENT_PART.size;
  if (a.nameLength > 0 && (a.nameOffset < (a.nonResident ? 0x40 : 0x18) || pos + a.nameOffset + 2 * a.nameLength > end)) {
    throw bad('name', pos + 0x0a, 'a name inside the attribute', `${a.nameLength} units at ${a.nameOffset}`);
  }
  const attrName = a.nameLength ? utf16(buf, pos + a.nameOffset, a.nameLength) : '';
  if (a.nonResident > 1) throw bad('form', pos + 8, '0 (resident) or 1', a.nonResident);
  if (pos + fixedPart > end) throw bad('header', pos, `${fixedPart} bytes`, a.length);
  if (!a.nonResident) {
    const r = { valueLength: buf.readUInt32LE(pos + RESIDENT_PART.fields.valueLength.offset), valueOffset: buf.readUInt16LE(pos + RESIDENT_PART.fields.valueOffset.offset) };
    if (pos + r.valueOffset + r.valueLength > end || (r.valueLength > 0 && r.valueOffset < RESIDENT_PART.size)) {
      throw bad('resident value', pos + 0x10, `a value inside the ${a.length}-byte attribute`, `${r.valueLength} bytes at ${r.valueOffset}`);
    }
    // A view, not a copy: the record buffer is this parse's own and never changes after it.
    return { type: a.type, name: attrName, flags: a.flags, id: a.id, record: number, value: buf.subarray(pos + r.valueOffset, pos + r.valueOffset + r.valueLength) };
  }
  const n = NON_RESIDENT_PART.decode(buf, pos);
  // A last VCN of -1 (all ones) marks an empty attribute; Number() of 2^64-1 rounds to 2^64.
  const lastVcn = n.lastVcn >= 2 ** 63 ? -1 : n.lastVcn;
  const sizes = [n.allocatedSize, n.dataSize, n.initializedSize, n.startVcn, lastVcn + 1];
  if (sizes.some((s) => s > Number.MAX_SAFE_INTEGER)) throw badInput('SV_ERR_FS_NTFS_TOO_LARGE', name, `MFT record ${number} attribute at ${pos} sizes`, at + pos + 0x10, `<= ${Number.MAX_SAFE_INTEGER}`, sizes.join('/'));
  if (n.startVcn > lastVcn + 1) throw bad('VCN range', pos + 0x10, 'start <= last + 1', `${n.startVcn}..${lastVcn}`);
  if (n.startVcn === 0 && (n.dataSize > n.allocatedSize || n.initializedSize > n.dataSize)) {
    throw bad('sizes', pos + 0x28, 'initialized <= data <= allocated', `${n.initializedSize} / ${n.dataSize} / ${n.allocatedSize}`);
  }
  if (n.runsOffset < 0x40 || pos + n.runsOffset > end) throw bad('runlist offset', pos + 0x20, `0x40..${a.length}`, n.runsOffset);
  if (n.compressionUnit > 16) throw bad('compression unit', pos + 0x22, '0..16', n.compressionUnit);
  const runs = decodeRuns(buf, pos + n.runsOffset, end, n.startVcn, lastVcn, {
    name, structure: `MFT record ${number} attribute 0x${a.type.toString(16)}${attrName ? `:${attrName}` : ''}`, at: at + pos + n.runsOffset, clusters: geo.clusters,
  });
  return {
    type: a.type, name: attrName, flags: a.flags, id: a.id, record: number,
    nonResident: {
      startVcn: n.startVcn, lastVcn, runs, compressionUnit: n.compressionUnit,
      allocatedSize: n.allocatedSize, dataSize: n.dataSize, initializedSize: n.initializedSize,
    },
  };
}
