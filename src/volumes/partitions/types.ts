/**
 * What the partition-table reader returns, and the names of the partition types it knows. Windows dynamic
 * disks (LDM) and LVM physical volumes are recognised and marked in `kind`, so the file-system layer can
 * refuse them with a clear error; their contents are not read here.
 */

export type PartitionScheme = 'mbr' | 'gpt' | 'none';

export interface Volume {
  /** 1-4 MBR primary slots, 5.. logical partitions (as Linux numbers them); GPT entry number (1-based). */
  readonly index: number;
  /** Byte offset and size in the virtual disk. */
  readonly offset: number;
  readonly size: number;
  /** MBR: "0x83"; GPT: type GUID, lowercase; no table: "". */
  readonly type: string;
  readonly typeName: string;
  /** 'lvm': LVM2 physical volume; 'ldm': Windows dynamic disk (LDM); 'plain' otherwise. */
  readonly kind: 'plain' | 'lvm' | 'ldm';
  readonly name?: string;
  readonly guid?: string;
  readonly bootable?: boolean;
}

export interface PartitionTable {
  readonly scheme: PartitionScheme;
  readonly sectorSize: number;
  readonly volumes: Volume[];
  readonly warnings: string[];
}

const MBR_NAMES: Readonly<Record<number, string>> = {
  0x01: 'FAT12', 0x04: 'FAT16 <32M', 0x06: 'FAT16', 0x07: 'HPFS/NTFS/exFAT', 0x0b: 'W95 FAT32',
  0x0c: 'W95 FAT32 (LBA)', 0x0e: 'W95 FAT16 (LBA)', 0x27: 'Windows recovery', 0x42: 'Windows dynamic disk (LDM)',
  0x82: 'Linux swap', 0x83: 'Linux', 0x8e: 'Linux LVM', 0xef: 'EFI System', 0xfd: 'Linux RAID',
};

const GPT_NAMES: Readonly<Record<string, string>> = {
  'c12a7328-f81f-11d2-ba4b-00a0c93ec93b': 'EFI System',
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot',
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved',
  'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7': 'Microsoft basic data',
  'de94bba4-06d1-4d40-a16a-bfd50179d6ac': 'Windows recovery',
  '5808c8aa-7e8f-42e0-85d2-e1e90434cfb3': 'Windows dynamic disk (LDM metadata)',
  'af9b60a0-1431-4f62-bc68-3311714a69ad': 'Windows dynamic disk (LDM data)',
  '0fc63daf-8483-4772-8e79-3d69d8477de4': 'Linux filesystem',
  '4f68bce3-e8cd-4db1-96e7-fbcaf984b709': 'Linux root (x86-64)',
  '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f': 'Linux swap',
  'e6d6d379-f507-44c2-a23c-238f2a3df928': 'Linux LVM',
  'a19d880f-05fc-4d3b-a006-743f0f84911e': 'Linux RAID',
};

export function mbrTypeInfo(type: number): { typeName: string; kind: Volume['kind'] } {
  const kind = type === 0x8e ? 'lvm' : type === 0x42 ? 'ldm' : 'plain';
  return { typeName: MBR_NAMES[type] ?? 'unknown', kind };
}

export function gptTypeInfo(guid: string): { typeName: string; kind: Volume['kind'] } {
  const typeName = GPT_NAMES[guid] ?? 'unknown';
  const kind = guid.startsWith('e6d6d379') ? 'lvm' : typeName.includes('LDM') ? 'ldm' : 'plain';
  return { typeName, kind };
}
