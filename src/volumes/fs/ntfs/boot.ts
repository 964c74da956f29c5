/**
 * The NTFS boot sector → the volume geometry every other part uses. Checked: OEM id, boot signature, bytes
 * per sector (256..4096, power of two), cluster size (power of two, at most 2 MiB), MFT record size and index
 * block size (power of two, 256 B..64 KiB), the MFT's first cluster inside the volume.
 */
import { badInput, hex } from '../../../errors/bad-input.js';
import { BOOT_SECTOR, BOOT_SIGNATURE, NTFS_OEM_ID } from './structs.js';

export interface NtfsGeometry {
  readonly bytesPerSector: number;
  readonly clusterSize: number;
  /** Clusters in the volume (from the boot sector's sector count, bounded by the volume's size). */
  readonly clusters: number;
  readonly mftLcn: number;
  readonly recordSize: number;
  readonly indexBlockSize: number;
  /** Volume serial as ntfsinfo/`vol` print it: 16 hex digits, upper case. */
  readonly serial: string;
}

const MAX_CLUSTER = 2 << 20;
const MIN_BLOCK = 256;
const MAX_BLOCK = 64 << 10;

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** Does this first sector look like NTFS (for probing)? */
export function looksLikeNtfs(sector: Buffer): boolean {
  return sector.length >= 512 && sector.toString('latin1', 3, 11) === NTFS_OEM_ID;
}

/** A size byte of the boot sector: positive = clusters, negative = 2^-n bytes. */
function sizeFromByte(byte: number, clusterSize: number): number {
  const signed = byte > 0x7f ? byte - 0x100 : byte;
  return signed > 0 ? signed * clusterSize : signed < 0 && signed > -31 ? 2 ** -signed : 0;
}

export function parseBoot(name: string, sector: Buffer, volumeSize: number): NtfsGeometry {
  const bad = (structure: string, offset: number, expected: string | number, found: string | number) =>
    badInput('SV_ERR_FS_NTFS_BAD_BOOT', name, `NTFS boot sector ${structure}`, offset, expected, found);
  if (sector.length < 512) throw bad('length', 0, 512, sector.length);
  const b = BOOT_SECTOR.decode(sector);
  if (b.oemId !== NTFS_OEM_ID) throw bad('OEM id', 3, JSON.stringify(NTFS_OEM_ID), JSON.stringify(b.oemId));
  if (b.signature !== BOOT_SIGNATURE) throw bad('signature', 0x1fe, hex(BOOT_SIGNATURE), hex(b.signature));
  if (!isPow2(b.bytesPerSector) || b.bytesPerSector < 256 || b.bytesPerSector > 4096) {
    throw bad('bytes per sector', 0x0b, 'a power of two in 256..4096', b.bytesPerSector);
  }
  const spc = b.sectorsPerCluster > 0x80 ? 2 ** (256 - b.sectorsPerCluster) : b.sectorsPerCluster;
  const clusterSize = spc * b.bytesPerSector;
  if (!isPow2(spc) || clusterSize > MAX_CLUSTER) throw bad('sectors per cluster', 0x0d, `a power of two, clusters <= ${MAX_CLUSTER} bytes`, b.sectorsPerCluster);
  const recordSize = sizeFromByte(b.clustersPerRecord, clusterSize);
  if (!isPow2(recordSize) || recordSize < MIN_BLOCK || recordSize > MAX_BLOCK || recordSize < b.bytesPerSector) {
    throw bad('MFT record size', 0x40, `a power of two in ${MIN_BLOCK}..${MAX_BLOCK}`, recordSize);
  }
  const indexBlockSize = sizeFromByte(b.clustersPerIndexBlock, clusterSize);
  if (!isPow2(indexBlockSize) || indexBlockSize < MIN_BLOCK || indexBlockSize > MAX_BLOCK) {
    throw bad('index block size', 0x44, `a power of two in ${MIN_BLOCK}..${MAX_BLOCK}`, indexBlockSize);
  }
  const clusters = Math.floor(Math.min(b.totalSectors * b.bytesPerSector, volumeSize) / clusterSize);
  if (b.mftLcn >= clusters) throw bad('MFT cluster', 0x30, `< ${clusters} (clusters in the volume)`, b.mftLcn);
  const serial = Buffer.from(b.serial).reverse().toString('hex').toUpperCase();
  return { bytesPerSector: b.bytesPerSector, clusterSize, clusters, mftLcn: b.mftLcn, recordSize, indexBlockSize, serial };
}
