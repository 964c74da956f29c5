/**
 * The FAT boot sector (BPB), checked, and the geometry derived from it: FAT type, where the FATs, the root
 * directory and the data region are, how many clusters exist. A value outside what the specification allows
 * is SV_ERR_FS_FAT_CORRUPT naming the field and its offset.
 */
import { badInput } from '../../../errors/bad-input.js';
import {
  BOOT_SIGNATURE, BPB, DIR_ENTRY_SIZE, EBPB16, EBPB32, EBPB_AT, EXTENDED_BOOT_SIG, FAT12_MAX_CLUSTERS, FAT16_MAX_CLUSTERS,
  FAT32_MAX_CLUSTERS,
} from './structs.js';

/** How a volume is named in messages when the caller gives no name. */
export const FAT_NAME = 'FAT volume';

export interface FatGeometry {
  /** The volume's name in error messages. */
  readonly name: string;
  readonly type: 'fat12' | 'fat16' | 'fat32';
  readonly bytesPerSector: number;
  readonly clusterSize: number;
  /** Byte offset of the FAT in use, and its size in bytes. */
  readonly fatOffset: number;
  readonly fatBytes: number;
  /** FAT12/16: byte offset and size of the fixed root directory; FAT32: the root's first cluster. */
  readonly rootOffset: number;
  readonly rootBytes: number;
  readonly rootCluster: number;
  readonly dataOffset: number;
  /** Highest valid cluster number (clusters are 2..maxCluster). */
  readonly maxCluster: number;
  readonly clusterCount: number;
  readonly bpbLabel: string;
  readonly serial: string;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** A cheap look: boot signature, sector size, cluster size, reserved sectors, FAT count and size, not NTFS/exFAT. */
export function looksLikeFat(head: Buffer): boolean {
  if (head.length < BPB.size) return false;
  const b = BPB.decode(head);
  if (b.signature !== BOOT_SIGNATURE || b.oemName === 'NTFS    ' || b.oemName === 'EXFAT   ') return false;
  const fatSize = b.fatSize16 || head.readUInt32LE(EBPB_AT);
  return [512, 1024, 2048, 4096].includes(b.bytesPerSector) && isPow2(b.sectorsPerCluster) && b.reservedSectors >= 1
    && b.numFats >= 1 && fatSize > 0 && (b.totalSectors16 || b.totalSectors32) > 0;
}

export function parseBpb(sector: Buffer, volumeSize: number, name = FAT_NAME): FatGeometry {
  const b = BPB.decode(sector);
  const bad = (field: keyof typeof BPB.fields | 'fatSize32' | 'rootCluster', expected: string | number, found: string | number) => {
    const off = field in BPB.fields ? BPB.fields[field as keyof typeof BPB.fields].offset : EBPB_AT + EBPB32.fields[field as 'fatSize32' | 'rootCluster'].offset;
    return badInput('SV_ERR_FS_FAT_CORRUPT', name, `boot sector ${field}`, off, expected, found);
  };
  if (b.signature !== BOOT_SIGNATURE) throw bad('signature', '0xaa55', `0x${b.signature.toString(16)}`);
  if (![512, 1024, 2048, 4096].includes(b.bytesPerSector)) throw bad('bytesPerSector', '512, 1024, 2048 or 4096', b.bytesPerSector);
  if (!isPow2(b.sectorsPerCluster)) throw bad('sectorsPerCluster', 'a power of two 1..128', b.sectorsPerCluster);
  if (b.reservedSectors < 1) throw bad('reservedSectors', '>= 1', b.reservedSectors);
  if (b.numFats < 1 || b.numFats > 4) throw bad('numFats', '1..4', b.numFats);
  const e32 = EBPB32.decode(sector, EBPB_AT);
  const fat32 = b.fatSize16 === 0;
  const fatSectors = fat32 ? e32.fatSize32 : b.fatSize16;
  if (fatSectors === 0) throw bad('fatSize32', '> 0', 0);
  const totalSectors = b.totalSectors16 || b.totalSectors32;
  const bps = b.bytesPerSector;
  if (totalSectors === 0 || totalSectors * bps > volumeSize) throw bad('totalSectors32', `1..${Math.floor(volumeSize / bps)} (the volume)`, totalSectors);
  if (fat32 && b.rootEntries !== 0) throw bad('rootEntries', '0 on FAT32', b.rootEntries);
  const rootSectors = Math.ceil((b.rootEntries * DIR_ENTRY_SIZE) / bps);
  const dataSector = b.reservedSectors + b.numFats * fatSectors + rootSectors;
  if (dataSector >= totalSectors) throw bad('totalSectors32', `more than the ${dataSector} sectors before the data region`, totalSectors);
  const clusterCount = Math.floor((totalSectors - dataSector) / b.sectorsPerCluster);
  const type = fat32 ? 'fat32' : clusterCount <= FAT12_MAX_CLUSTERS ? 'fat12' : 'fat16';
  if (!fat32 && clusterCount > FAT16_MAX_CLUSTERS) throw bad('fatSize16', 'a FAT32 BPB for more than 65524 clusters', b.fatSize16);
  if (clusterCount < 1 || clusterCount > FAT32_MAX_CLUSTERS) throw bad('totalSectors32', `1..${FAT32_MAX_CLUSTERS} clusters`, clusterCount);
  const maxCluster = clusterCount + 1;
  const entryBits = type === 'fat12' ? 12 : type === 'fat16' ? 16 : 32;
  const fatBytes = fatSectors * bps;
  if (Math.ceil(((maxCluster + 1) * entryBits) / 8) > fatBytes) throw bad(fat32 ? 'fatSize32' : 'fatSize16', `a FAT covering ${maxCluster + 1} entries`, fatSectors);
  // FAT32 may mirror (all FATs written) or name one active FAT in extFlags bits 0-3 (bit 7 set).
  const active = fat32 && (e32.extFlags & 0x80) !== 0 ? e32.extFlags & 0x0f : 0;
  if (active >= b.numFats) throw bad('fatSize32', `an active FAT below ${b.numFats}`, active);
  if (fat32 && (e32.rootCluster < 2 || e32.rootCluster > maxCluster)) throw bad('rootCluster', `2..${maxCluster}`, e32.rootCluster);
  const e16 = EBPB16.decode(sector, EBPB_AT);
  const ext = fat32 ? e32 : e16;
  const hasExt = ext.bootSig === EXTENDED_BOOT_SIG;
  const serial = hasExt ? ext.volumeId.toString(16).toUpperCase().padStart(8, '0') : '';
  return {
    name,
    type,
    bytesPerSector: bps,
    clusterSize: b.sectorsPerCluster * bps,
    fatOffset: (b.reservedSectors + active * fatSectors) * bps,
    fatBytes,
    rootOffset: (b.reservedSectors + b.numFats * fatSectors) * bps,
    rootBytes: b.rootEntries * DIR_ENTRY_SIZE,
    rootCluster: fat32 ? e32.rootCluster : 0,
    dataOffset: dataSector * bps,
    maxCluster,
    clusterCount,
    bpbLabel: hasExt ? shortText(ext.volumeLabel) : '',
    serial: serial ? `${serial.slice(0, 4)}-${serial.slice(4)}` : '',
  };
}

/** An 11-byte space-padded field as text ('NO NAME' is no label). */
function shortText(b: Buffer): string {
  const s = b.toString('latin1').replace(/[ \0]+$/u, '');
  return s === 'NO NAME' ? '' : s;
}
