/**
 * MBR partition tables: the 4 primary entries of LBA 0 and, inside an extended partition (0x05, 0x0F, 0x85),
 * the chain of extended boot records (EBRs), each holding one logical partition and a link to the next EBR.
 * Layout in structs.ts. Invariants checked: every partition lies inside the disk, every logical partition and
 * EBR inside its extended partition; the EBR chain never revisits an EBR (SV_ERR_VOLUME_EBR_LOOP) and holds
 * at most MAX_LOGICAL links, so a damaged chain ends in a coded error, never a hang. Read-only.
 */
import { SvError } from '../../errors/index.js';
import { badInput } from '../../errors/bad-input.js';
import type { DiskImage } from '../../formats/types.js';
import { MBR_ENTRIES_AT, MBR_ENTRY, MBR_ENTRY_COUNT, MBR_EXTENDED_TYPES, MBR_SECTOR, MBR_SIGNATURE, MBR_SIGNATURE_AT, MBR_TYPE_EMPTY } from './structs.js';
import { mbrTypeInfo, type Volume } from './types.js';

/** Most logical partitions followed in one extended partition. */
export const MAX_LOGICAL = 256;

export type MbrEntry = ReturnType<typeof MBR_ENTRY.decode>;

/** The 4 entries of an MBR/EBR sector, or undefined when the sector has no boot signature. */
export function mbrEntries(sector: Buffer): MbrEntry[] | undefined {
  if (sector.readUInt16LE(MBR_SIGNATURE_AT) !== MBR_SIGNATURE) return undefined;
  return Array.from({ length: MBR_ENTRY_COUNT }, (_, i) => MBR_ENTRY.decode(sector, MBR_ENTRIES_AT + i * MBR_ENTRY.size));
}

/** Whether the entries look like a partition table (status bytes 0x00/0x80), not a volume boot sector. */
export function isPartitionTable(entries: MbrEntry[]): boolean {
  return entries.every((e) => e.status === 0 || e.status === 0x80) && entries.some((e) => e.type !== MBR_TYPE_EMPTY);
}

export async function readMbrVolumes(disk: DiskImage, entries: MbrEntry[], sectorSize: number): Promise<Volume[]> {
  const path = disk.info.path;
  const diskSectors = Math.floor(disk.info.virtualSize / sectorSize);
  const volumes: Volume[] = [];
  const logical: Volume[] = [];
  for (const [i, e] of entries.entries()) {
    if (e.type === MBR_TYPE_EMPTY) continue;
    const at = MBR_ENTRIES_AT + i * MBR_ENTRY.size;
    checkRange(path, `MBR entry ${i + 1}`, at, e.lbaFirst, e.sectors, 0, diskSectors);
    if (MBR_EXTENDED_TYPES.has(e.type)) {
      if (logical.length > 0) throw badInput('SV_ERR_VOLUME_BAD_MBR', path, `MBR entry ${i + 1}`, at, 'at most one extended partition', 'a second one');
      logical.push(...await readLogical(disk, e.lbaFirst, e.sectors, sectorSize));
      continue;
    }
    volumes.push(toVolume(i + 1, e, e.lbaFirst, sectorSize));
  }
  return [...volumes, ...logical];
}

async function readLogical(disk: DiskImage, extStart: number, extSectors: number, sectorSize: number): Promise<Volume[]> {
  const path = disk.info.path;
  const out: Volume[] = [];
  const visited = new Set<number>();
  let ebr = extStart;
  for (;;) {
    if (visited.has(ebr)) {
      throw new SvError('SV_ERR_VOLUME_EBR_LOOP', `${path}: EBR chain at offset ${ebr * sectorSize}: expected a new EBR, found one already read (loop after ${out.length} logical partitions)`,
        { path, structure: 'EBR', offset: ebr * sectorSize, expected: 'a new EBR', found: 'an EBR already read' });
    }
    if (visited.size >= MAX_LOGICAL) throw badInput('SV_ERR_VOLUME_BAD_MBR', path, 'EBR chain', ebr * sectorSize, `at most ${MAX_LOGICAL} logical partitions`, 'more');
    visited.add(ebr);
    const sector = await disk.read(ebr * sectorSize, MBR_SECTOR);
    const entries = mbrEntries(sector);
    if (entries === undefined) {
      if (sector.every((b) => b === 0)) return out; // an empty extended partition: no EBR written yet
      throw badInput('SV_ERR_VOLUME_BAD_MBR', path, 'EBR boot signature', ebr * sectorSize + MBR_SIGNATURE_AT, '0x55 0xaa', sector.toString('hex', MBR_SIGNATURE_AT, MBR_SIGNATURE_AT + 2));
    }
    const [cur, next] = entries as [MbrEntry, MbrEntry];
    const extEnd = extStart + extSectors;
    if (cur.type !== MBR_TYPE_EMPTY) {
      checkRange(path, 'EBR logical entry', ebr * sectorSize + MBR_ENTRIES_AT, ebr + cur.lbaFirst, cur.sectors, extStart, extEnd);
      out.push(toVolume(5 + out.length, cur, ebr + cur.lbaFirst, sectorSize));
    }
    if (next.type === MBR_TYPE_EMPTY || next.lbaFirst === 0) return out;
    checkRange(path, 'EBR link entry', ebr * sectorSize + MBR_ENTRIES_AT + MBR_ENTRY.size, extStart + next.lbaFirst, 1, extStart, extEnd);
    ebr = extStart + next.lbaFirst;
  }
}

function checkRange(path: string, structure: string, at: number, first: number, sectors: number, lo: number, hi: number): void {
  if (sectors === 0 || first < lo || first + sectors > hi) {
    throw badInput('SV_ERR_VOLUME_BAD_MBR', path, structure, at, `sectors inside [${lo}, ${hi})`, `start ${first}, ${sectors} sectors`);
  }
}

function toVolume(index: number, e: MbrEntry, first: number, sectorSize: number): Volume {
  const type = `0x${e.type.toString(16).padStart(2, '0')}`;
  return { index, offset: first * sectorSize, size: e.sectors * sectorSize, type, ...mbrTypeInfo(e.type), bootable: e.status === 0x80 };
}
