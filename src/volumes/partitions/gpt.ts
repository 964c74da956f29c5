/**
 * GUID partition tables: the primary header at LBA 1 (entries usually from LBA 2) and the backup header at the
 * last LBA (entries just before it). Layout in structs.ts. A header is accepted when its signature, revision
 * major, size, CRC-32, own LBA, entry size (>= 128, power of two), entries array (inside the disk, at most
 * GPT_ENTRIES_MAX_BYTES, CRC-32) and usable range are right, and every used entry lies inside the usable range.
 * A damaged primary falls back to the backup with a warning; a damaged backup behind a good primary is a
 * warning; both damaged is SV_ERR_VOLUME_BAD_GPT naming both faults. Memory: one entries array (<= 1 MiB).
 */
import { SvError } from '../../errors/index.js';
import { isZero } from '../../formats/common.js';
import type { DiskImage } from '../../formats/types.js';
import { badInput } from '../../errors/bad-input.js';
import { readGuid } from '../../formats/vhdx/guid.js';
import { crc32 } from './crc32.js';
import { GPT_ENTRIES_MAX_BYTES, GPT_ENTRY, GPT_ENTRY_MIN, GPT_HEADER, GPT_HEADER_MIN, GPT_SIGNATURE } from './structs.js';
import { gptTypeInfo, type Volume } from './types.js';

export async function readGptVolumes(disk: DiskImage, sectorSize: number, warnings: string[]): Promise<Volume[]> {
  const lastLba = Math.floor(disk.info.virtualSize / sectorSize) - 1;
  let primaryFault: SvError | undefined;
  try {
    const { volumes, alternateLba } = await readCopy(disk, sectorSize, 1, lastLba, 'primary');
    try {
      await readCopy(disk, sectorSize, alternateLba, lastLba, 'backup'); // not the last LBA after a disk grew
    } catch (err) {
      warnings.push(`backup GPT damaged (the primary is used): ${(err as Error).message}`);
    }
    return volumes;
  } catch (err) {
    if (!(err instanceof SvError)) throw err;
    primaryFault = err;
  }
  try {
    const { volumes } = await readCopy(disk, sectorSize, lastLba, lastLba, 'backup');
    warnings.push(`primary GPT damaged, the backup GPT is used: ${primaryFault.message}`);
    return volumes;
  } catch (err) {
    if (!(err instanceof SvError)) throw err;
    throw new SvError('SV_ERR_VOLUME_BAD_GPT', `${disk.info.path}: both GPT headers are damaged: ${primaryFault.message}; ${err.message}`,
      { path: disk.info.path, primary: primaryFault.details, backup: err.details }, { cause: err });
  }
}

/** One copy of the GPT (header at `lba`): its volumes and where the header says the other copy is. */
async function readCopy(disk: DiskImage, sectorSize: number, lba: number, lastLba: number, which: string): Promise<{ volumes: Volume[]; alternateLba: number }> {
  const path = disk.info.path;
  const at = lba * sectorSize;
  const bad = (field: keyof typeof GPT_HEADER.fields, expected: string | number, found: string | number): SvError =>
    badInput('SV_ERR_VOLUME_BAD_GPT', path, `${which} GPT header ${field}`, at + GPT_HEADER.fields[field].offset, expected, found);
  if (lba < 1 || lba > lastLba) throw bad('myLba', `an LBA inside the disk (1..${lastLba})`, lba);
  const sector = await disk.read(at, sectorSize);
  const h = GPT_HEADER.decode(sector);
  if (h.signature !== GPT_SIGNATURE) throw bad('signature', JSON.stringify(GPT_SIGNATURE), JSON.stringify(h.signature));
  if (h.revision >>> 16 !== 1) throw bad('revision', 'major version 1', `0x${h.revision.toString(16)}`);
  if (h.headerSize < GPT_HEADER_MIN || h.headerSize > sectorSize) throw bad('headerSize', `${GPT_HEADER_MIN}..${sectorSize}`, h.headerSize);
  const crc = crc32(sector.subarray(0, h.headerSize), GPT_HEADER.fields.headerCrc.offset, GPT_HEADER.fields.headerCrc.size);
  if (crc !== h.headerCrc) throw bad('headerCrc', hex32(crc), hex32(h.headerCrc));
  if (h.myLba !== lba) throw bad('myLba', lba, h.myLba);
  if (h.entrySize < GPT_ENTRY_MIN || (h.entrySize & (h.entrySize - 1)) !== 0) throw bad('entrySize', `a power of two >= ${GPT_ENTRY_MIN}`, h.entrySize);
  const bytes = h.entryCount * h.entrySize;
  if (bytes > GPT_ENTRIES_MAX_BYTES) throw bad('entryCount', `at most ${GPT_ENTRIES_MAX_BYTES} bytes of entries`, `${h.entryCount} x ${h.entrySize}`);
  const entrySectors = Math.ceil(bytes / sectorSize);
  if (h.entriesLba < 2 || h.entriesLba + entrySectors - 1 > lastLba) throw bad('entriesLba', `an array inside LBAs 2..${lastLba}`, h.entriesLba);
  if (h.firstUsableLba > h.lastUsableLba || h.lastUsableLba >= lastLba || h.firstUsableLba < 2) {
    throw bad('lastUsableLba', `2 <= first usable <= last usable < ${lastLba}`, `${h.firstUsableLba}..${h.lastUsableLba}`);
  }
  const entries = await disk.read(h.entriesLba * sectorSize, bytes);
  const ecrc = crc32(entries);
  if (ecrc !== h.entriesCrc) throw bad('entriesCrc', hex32(ecrc), hex32(h.entriesCrc));
  const volumes: Volume[] = [];
  const typeAt = GPT_ENTRY.fields.typeGuid.offset;
  for (let i = 0; i < h.entryCount; i++) {
    // An unused entry (zero type GUID: most of the 128) is skipped before it is decoded.
    if (isZero(entries.subarray(i * h.entrySize + typeAt, i * h.entrySize + typeAt + GPT_ENTRY.fields.typeGuid.size))) continue;
    const e = GPT_ENTRY.decode(entries, i * h.entrySize);
    const type = readGuid(e.typeGuid);
    if (e.firstLba < h.firstUsableLba || e.lastLba > h.lastUsableLba || e.firstLba > e.lastLba) {
      throw badInput('SV_ERR_VOLUME_BAD_GPT', path, `${which} GPT entry ${i + 1}`, h.entriesLba * sectorSize + i * h.entrySize,
        `LBAs inside ${h.firstUsableLba}..${h.lastUsableLba}`, `${e.firstLba}..${e.lastLba}`);
    }
    const name = e.name.toString('utf16le').replace(/\0.*$/su, '');
    volumes.push({
      index: i + 1, offset: e.firstLba * sectorSize, size: (e.lastLba - e.firstLba + 1) * sectorSize, type,
      ...gptTypeInfo(type), name, guid: readGuid(e.uniqueGuid),
    });
  }
  return { volumes, alternateLba: h.alternateLba };
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
