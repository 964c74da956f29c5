/**
 * Read-only partition-table reader over a DiskImage (issue 12, item-level restore): MBR with extended/logical
 * partitions, GPT (primary and backup headers, CRCs checked; a damaged primary falls back to the backup with a
 * warning), or no table (the whole disk is one volume). LVM and Windows dynamic-disk (LDM) partitions are
 * listed with `kind` 'lvm' / 'ldm'; their contents are not read. Errors: SV_ERR_VOLUME_* (catalogue).
 * The disk is only read: sector 0, then the GPT headers and entries or the EBR chain.
 */
import type { DiskImage } from '../../formats/types.js';
import { readGptVolumes } from './gpt.js';
import { isPartitionTable, mbrEntries, readMbrVolumes } from './mbr.js';
import { MBR_SECTOR, MBR_TYPE_GPT_PROTECTIVE } from './structs.js';
import type { PartitionTable } from './types.js';

export type { PartitionScheme, PartitionTable, Volume } from './types.js';

export interface ReadPartitionsOptions {
  /** Logical sector size of the disk (512 or 4096); default: the image's `logicalSectorSize`, else 512. */
  readonly sectorSize?: 512 | 4096;
}

export async function readPartitions(disk: DiskImage, opts: ReadPartitionsOptions = {}): Promise<PartitionTable> {
  const sectorSize = opts.sectorSize ?? (disk.info.logicalSectorSize === 4096 ? 4096 : 512);
  const size = disk.info.virtualSize;
  const warnings: string[] = [];
  const whole = (): PartitionTable => ({
    scheme: 'none', sectorSize, warnings,
    volumes: size > 0 ? [{ index: 1, offset: 0, size, type: '', typeName: 'whole disk', kind: 'plain' }] : [],
  });
  if (size < 3 * sectorSize) return whole();
  const entries = mbrEntries(await disk.read(0, MBR_SECTOR));
  if (entries === undefined) return whole();
  if (!isPartitionTable(entries)) {
    if (entries.some((e) => e.type !== 0)) warnings.push('sector 0 has a boot signature but no valid partition table (a volume boot sector?): read as a single volume');
    return whole();
  }
  if (entries.some((e) => e.type === MBR_TYPE_GPT_PROTECTIVE)) {
    return { scheme: 'gpt', sectorSize, volumes: await readGptVolumes(disk, sectorSize, warnings), warnings };
  }
  return { scheme: 'mbr', sectorSize, volumes: await readMbrVolumes(disk, entries, sectorSize), warnings };
}
