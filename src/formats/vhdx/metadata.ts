/**
 * The metadata region (MS-VHDX 2.6): the table, then the system items this reader needs: file parameters,
 * virtual disk size, page 83 data, logical and physical sector sizes, and the parent locator of a differencing
 * disk. An unknown item marked IsRequired makes the file unreadable (SV_ERR_VHDX_UNSUPPORTED), as the
 * specification asks; unknown optional items are ignored.
 */
import { badInput } from '../../errors/bad-input.js';
import type { FileView } from './file-view.js';
import { readGuid } from './guid.js';
import {
  FILE_PARAMETERS, FILE_PARAM_HAS_PARENT, FILE_PARAM_LEAVE_BLOCKS_ALLOCATED, GUIDS, LOGICAL_SECTOR_SIZE, MAX_BLOCK_SIZE,
  MAX_VIRTUAL_SIZE, METADATA_TABLE_SIZE, MIN_BLOCK_SIZE, PAGE83_DATA, PHYSICAL_SECTOR_SIZE, VIRTUAL_DISK_SIZE,
} from './layout.js';
import { parseMetadataTable, parseParentLocator, type MetadataEntry, type ParentLocator } from './structs.js';

export interface VhdxParams {
  readonly blockSize: number;
  readonly leaveBlocksAllocated: boolean;
  readonly hasParent: boolean;
  readonly virtualSize: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly page83: string;
  readonly parentLocator?: ParentLocator;
}

const KNOWN: ReadonlySet<string> = new Set([
  GUIDS.fileParameters, GUIDS.virtualDiskSize, GUIDS.page83Data, GUIDS.logicalSectorSize, GUIDS.physicalSectorSize, GUIDS.parentLocator,
]);

export async function readMetadata(view: FileView, regionOffset: number, regionLength: number): Promise<VhdxParams> {
  const path = view.path;
  const table = await view.read(regionOffset, METADATA_TABLE_SIZE, 'metadata table');
  const entries = parseMetadataTable(table, { path, offset: regionOffset }, regionLength);
  for (const e of entries) {
    if (e.isRequired && (e.isUser || !KNOWN.has(e.itemId))) {
      throw badInput('SV_ERR_VHDX_UNSUPPORTED', path, `metadata item ${e.itemId} (marked required)`, regionOffset + e.offset, 'a metadata item this reader knows', 'an unknown required item');
    }
  }
  const item = async (guid: string, name: string, size: number | undefined, required: boolean): Promise<Buffer | undefined> => {
    const e: MetadataEntry | undefined = entries.find((x) => x.itemId === guid && !x.isUser);
    if (!e) {
      if (required) throw badInput('SV_ERR_VHDX_METADATA', path, `metadata table (item ${name})`, regionOffset, `an entry for ${name} (${guid})`, 'none');
      return undefined;
    }
    if (size !== undefined && e.length !== size) {
      throw badInput('SV_ERR_VHDX_METADATA', path, `metadata item ${name} length`, regionOffset + e.offset, size, e.length);
    }
    return view.read(regionOffset + e.offset, e.length, `metadata item ${name}`);
  };
  const offsetOf = (guid: string): number => regionOffset + (entries.find((x) => x.itemId === guid && !x.isUser)?.offset ?? 0);

  const fp = FILE_PARAMETERS.decode((await item(GUIDS.fileParameters, 'file parameters', FILE_PARAMETERS.size, true))!);
  const bs = fp.blockSize;
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw badInput('SV_ERR_VHDX_METADATA', path, 'file parameters blockSize', offsetOf(GUIDS.fileParameters), 'a power of two from 1 MiB to 256 MiB', bs);
  }
  const lss = LOGICAL_SECTOR_SIZE.decode((await item(GUIDS.logicalSectorSize, 'logical sector size', LOGICAL_SECTOR_SIZE.size, true))!).logicalSectorSize;
  if (lss !== 512 && lss !== 4096) throw badInput('SV_ERR_VHDX_METADATA', path, 'logical sector size', offsetOf(GUIDS.logicalSectorSize), '512 or 4096', lss);
  const pss = PHYSICAL_SECTOR_SIZE.decode((await item(GUIDS.physicalSectorSize, 'physical sector size', PHYSICAL_SECTOR_SIZE.size, true))!).physicalSectorSize;
  if (pss !== 512 && pss !== 4096) throw badInput('SV_ERR_VHDX_METADATA', path, 'physical sector size', offsetOf(GUIDS.physicalSectorSize), '512 or 4096', pss);
  const vs = VIRTUAL_DISK_SIZE.decode((await item(GUIDS.virtualDiskSize, 'virtual disk size', VIRTUAL_DISK_SIZE.size, true))!).virtualDiskSize;
  if (!Number.isSafeInteger(vs) || vs <= 0 || vs > MAX_VIRTUAL_SIZE || vs % lss !== 0) {
    throw badInput('SV_ERR_VHDX_METADATA', path, 'virtual disk size', offsetOf(GUIDS.virtualDiskSize), `a multiple of ${lss} from ${lss} to 64 TiB`, vs);
  }
  const page83 = readGuid(PAGE83_DATA.decode((await item(GUIDS.page83Data, 'page 83 data', PAGE83_DATA.size, true))!).page83Data);
  const hasParent = (fp.flags & FILE_PARAM_HAS_PARENT) !== 0;
  let parentLocator: ParentLocator | undefined;
  if (hasParent) {
    const raw = (await item(GUIDS.parentLocator, 'parent locator', undefined, true))!;
    parentLocator = parseParentLocator(raw, { path, offset: offsetOf(GUIDS.parentLocator) });
  }
  return {
    blockSize: bs,
    leaveBlocksAllocated: (fp.flags & FILE_PARAM_LEAVE_BLOCKS_ALLOCATED) !== 0,
    hasParent,
    virtualSize: vs,
    logicalSectorSize: lss,
    physicalSectorSize: pss,
    page83,
    ...(parentLocator ? { parentLocator } : {}),
  };
}
