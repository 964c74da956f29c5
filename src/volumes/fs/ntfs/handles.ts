/**
 * The right reader for an attribute's bytes: resident value, run-mapped (sparse aware), or LZNT1-compressed.
 * Encrypted ($EFS) data and compression with clusters above 4 KiB are refused with SV_ERR_FS_NTFS_UNSUPPORTED.
 */
import { SvError } from '../../../errors/index.js';
import type { FileHandle } from '../types.js';
import type { NtfsFile } from './file.js';
import type { Mft } from './mft.js';
import type { RecordAttribute } from './record.js';
import { CompressedHandle, RunHandle, residentHandle } from './stream.js';
import { ATTR_FLAG_COMPRESSION_MASK, ATTR_FLAG_ENCRYPTED } from './structs.js';

export function attributeHandle(mft: Mft, file: NtfsFile, attr: RecordAttribute): FileHandle {
  const structure = `MFT record ${file.record} attribute 0x${attr.type.toString(16)}${attr.name ? `:${attr.name}` : ''}`;
  const refuse = (what: string) => new SvError('SV_ERR_FS_NTFS_UNSUPPORTED', `${mft.name}: ${structure}: ${what}`, { path: mft.name, record: file.record, structure });
  if (attr.flags & ATTR_FLAG_ENCRYPTED) throw refuse('encrypted (EFS) data is not readable without the user\'s key');
  if (attr.value) return residentHandle(attr.value);
  const nr = attr.nonResident!;
  const ctx = { vol: mft.vol, name: mft.name, clusterSize: mft.geo.clusterSize, structure };
  if ((attr.flags & ATTR_FLAG_COMPRESSION_MASK) !== 0 && nr.compressionUnit !== 0) {
    if ((attr.flags & ATTR_FLAG_COMPRESSION_MASK) !== 1) throw refuse(`compression format ${attr.flags & ATTR_FLAG_COMPRESSION_MASK} (only LZNT1 = 1)`);
    if (mft.geo.clusterSize > 4096) throw refuse(`compressed data with ${mft.geo.clusterSize}-byte clusters (NTFS compresses with clusters up to 4 KiB)`);
    return new CompressedHandle(ctx, nr.runs, nr.dataSize, nr.compressionUnit);
  }
  return new RunHandle(ctx, nr.runs, nr.dataSize, nr.initializedSize);
}
