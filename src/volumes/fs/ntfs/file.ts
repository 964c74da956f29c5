/**
 * A file = its base MFT record plus, when it has an $ATTRIBUTE_LIST, the extension records that list names.
 * The extents of a non-resident attribute spread over several records are merged into one runlist (sorted by
 * starting VCN, contiguous, no cluster mapped twice). Defences: the list is bounded in size, each extension
 * record must name this file as its base, an extent named twice or extents that overlap are
 * SV_ERR_FS_NTFS_LOOP; nested attribute lists are not followed.
 */
import { badInput } from '../../../errors/bad-input.js';
import { SvError } from '../../../errors/index.js';
import type { Mft } from './mft.js';
import type { MftRecord, RecordAttribute } from './record.js';
import { checkNoOverlap, type Run } from './runlist.js';
import { RunHandle } from './stream.js';
import { AT, ATTRIBUTE_LIST_ENTRY, RECORD_IN_USE, mftRef, utf16 } from './structs.js';

const MAX_ATTRIBUTE_LIST = 1 << 20;

export interface NtfsFile {
  readonly record: number;
  readonly sequence: number;
  readonly flags: number;
  readonly linkCount: number;
  /** Resident attributes as found; non-resident ones merged across extents (one entry per type + name). */
  readonly attributes: RecordAttribute[];
}

function loop(mft: Mft, record: number, what: string, details: Record<string, unknown>): SvError {
  return new SvError('SV_ERR_FS_NTFS_LOOP', `${mft.name}: MFT record ${record} $ATTRIBUTE_LIST: ${what}`, { path: mft.name, record, ...details });
}

/** Load file `record`; `sequence` (from a directory entry) must match when given. */
export async function loadFile(mft: Mft, record: number, sequence?: number): Promise<NtfsFile> {
  const base = await mft.record(record);
  const bad = (what: string, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_NTFS_BAD_RECORD', mft.name, `MFT record ${record} ${what}`, mft.volumeOffset(record * mft.geo.recordSize), expected, found);
  if ((base.flags & RECORD_IN_USE) === 0) throw bad('flags', 'a record in use', 'a free record');
  if (base.base.record !== 0) throw bad('base reference', 'a base record', `an extension of record ${base.base.record}`);
  if (sequence !== undefined && sequence !== 0 && base.sequence !== sequence) throw bad('sequence number', sequence, base.sequence);
  const list = base.attributes.find((a) => a.type === AT.ATTRIBUTE_LIST);
  const attrs = list ? await fromList(mft, base, list) : base.attributes;
  return { record, sequence: base.sequence, flags: base.flags, linkCount: base.linkCount, attributes: merge(mft, record, attrs) };
}

async function listBytes(mft: Mft, base: MftRecord, list: RecordAttribute): Promise<Buffer> {
  if (list.value) return list.value;
  const nr = list.nonResident!;
  if (nr.dataSize > MAX_ATTRIBUTE_LIST) {
    throw badInput('SV_ERR_FS_NTFS_TOO_LARGE', mft.name, `MFT record ${base.number} $ATTRIBUTE_LIST size`, -1, `<= ${MAX_ATTRIBUTE_LIST}`, nr.dataSize);
  }
  checkNoOverlap(nr.runs, mft.name, `MFT record ${base.number} $ATTRIBUTE_LIST`);
  const ctx = { vol: mft.vol, name: mft.name, clusterSize: mft.geo.clusterSize, structure: `MFT record ${base.number} $ATTRIBUTE_LIST` };
  return new RunHandle(ctx, nr.runs, nr.dataSize, nr.initializedSize).read(0, nr.dataSize);
}

async function fromList(mft: Mft, base: MftRecord, list: RecordAttribute): Promise<RecordAttribute[]> {
  const bytes = await listBytes(mft, base, list);
  const out: RecordAttribute[] = [];
  const seen = new Set<string>();
  const records = new Map<number, MftRecord>([[base.number, base]]);
  for (let pos = 0; pos + ATTRIBUTE_LIST_ENTRY.size <= bytes.length;) {
    const e = ATTRIBUTE_LIST_ENTRY.decode(bytes, pos);
    if (e.length < ATTRIBUTE_LIST_ENTRY.size || pos + e.length > bytes.length || e.nameOffset + 2 * e.nameLength > e.length) {
      throw badInput('SV_ERR_FS_NTFS_BAD_ATTRIBUTE', mft.name, `MFT record ${base.number} $ATTRIBUTE_LIST entry`, pos, `an entry of ${ATTRIBUTE_LIST_ENTRY.size}..${bytes.length - pos} bytes`, e.length);
    }
    const name = utf16(bytes, pos + e.nameOffset, e.nameLength);
    const ref = mftRef(e.ref);
    const key = `${ref.record}/${e.id}`;
    if (seen.has(key)) throw loop(mft, base.number, `attribute ${e.id} of record ${ref.record} listed twice`, { entry: pos });
    seen.add(key);
    let rec = records.get(ref.record);
    if (!rec) {
      rec = await mft.record(ref.record);
      if (rec.base.record !== base.number || (rec.flags & RECORD_IN_USE) === 0) {
        throw loop(mft, base.number, `names record ${ref.record}, which belongs to record ${rec.base.record}`, { entry: pos, extension: ref.record });
      }
      records.set(ref.record, rec);
    }
    const attr = rec.attributes.find((a) => a.id === e.id && a.type === e.type && a.name === name);
    if (!attr) {
      throw badInput('SV_ERR_FS_NTFS_BAD_ATTRIBUTE', mft.name, `MFT record ${base.number} $ATTRIBUTE_LIST entry`, pos, `attribute 0x${e.type.toString(16)} id ${e.id} in record ${ref.record}`, 'none');
    }
    if (attr.type !== AT.ATTRIBUTE_LIST) out.push(attr);
    pos += e.length;
  }
  return out;
}

function merge(mft: Mft, record: number, attrs: RecordAttribute[]): RecordAttribute[] {
  // Most files (every small one) have only resident attributes: nothing to merge or check.
  if (!attrs.some((a) => a.nonResident)) return attrs;
  const out: RecordAttribute[] = [];
  const groups = new Map<string, { at: number; extents: RecordAttribute[] }>();
  for (const a of attrs) {
    if (!a.nonResident) {
      out.push(a);
      continue;
    }
    const key = `${a.type}:${a.name}`;
    const g = groups.get(key);
    if (g) g.extents.push(a);
    else {
      groups.set(key, { at: out.length, extents: [a] });
      out.push(a); // replaced by the merged attribute below
    }
  }
  for (const { at, extents } of groups.values()) {
    if (extents.length === 1) continue;
    extents.sort((a, b) => a.nonResident!.startVcn - b.nonResident!.startVcn);
    const first = extents[0]!;
    const runs: Run[] = [];
    let next = 0;
    for (const x of extents) {
      const nr = x.nonResident!;
      if (nr.startVcn !== next) {
        if (nr.startVcn < next) throw loop(mft, record, `extents of attribute 0x${x.type.toString(16)} overlap at VCN ${nr.startVcn}`, { vcn: nr.startVcn });
        throw badInput('SV_ERR_FS_NTFS_BAD_ATTRIBUTE', mft.name, `MFT record ${record} attribute 0x${x.type.toString(16)} extents`, -1, `an extent starting at VCN ${next}`, nr.startVcn);
      }
      runs.push(...nr.runs);
      next = nr.lastVcn + 1;
    }
    out[at] = { ...first, nonResident: { ...first.nonResident!, lastVcn: next - 1, runs } };
  }
  for (const a of out) if (a.nonResident) checkNoOverlap(a.nonResident.runs, mft.name, `MFT record ${record} attribute 0x${a.type.toString(16)}${a.name ? `:${a.name}` : ''}`);
  return out;
}
