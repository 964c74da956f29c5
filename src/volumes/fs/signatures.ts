/**
 * What a volume holds, by signature, for the message of a volume no reader opens (and for `files volumes`):
 * each entry is where its on-disk magic lives in the first IDENTIFY_BYTES of the volume.
 *
 *   LUKS            0      "LUKS\xba\xbe"                 (LUKS1 and LUKS2 header)
 *   LVM2 PV         512*k  "LABELONE", "LVM2 001" at +24  (label in one of sectors 0-3)
 *   XFS             0      "XFSB"
 *   ReFS            3      "ReFS\0\0\0\0"
 *   exFAT           3      "EXFAT   "
 *   BitLocker       3      "-FVE-FS-"
 *   NTFS            3      "NTFS    "
 *   FAT             54/82  "FAT12   " / "FAT16   " / "FAT32   " with boot signature 0x55AA at 510
 *   ext2/3/4        1080   0xEF53 (superblock magic, LE)
 *   swap            4086   "SWAPSPACE2" / "SWAP-SPACE"   (end of a 4 KiB page)
 *   Linux RAID md   4096   0xA92B4EFC (LE; metadata 1.2; 1.1 at 0)
 *   ISO 9660        32769  "CD001"
 *   APFS            32     "NXSB"
 *   HFS+            1024   "H+" / "HX"
 *   btrfs           65600  "_BHRfS_M"                     (superblock at 64 KiB, magic at +64)
 */
export const IDENTIFY_BYTES = 65536 + 4096;

const at = (buf: Buffer, offset: number, text: string): boolean =>
  buf.length >= offset + text.length && buf.toString('latin1', offset, offset + text.length) === text;

const u32 = (buf: Buffer, offset: number): number | undefined => (buf.length >= offset + 4 ? buf.readUInt32LE(offset) : undefined);

const SIGNATURES: ReadonlyArray<readonly [string, (b: Buffer) => boolean]> = [
  ['LUKS encrypted volume', (b) => at(b, 0, 'LUKS\xba\xbe')],
  ['LVM2 physical volume', (b) => [0, 1, 2, 3].some((s) => at(b, s * 512, 'LABELONE') && at(b, s * 512 + 24, 'LVM2'))],
  ['XFS file system', (b) => at(b, 0, 'XFSB')],
  ['ReFS file system', (b) => at(b, 3, 'ReFS\0\0\0\0')],
  ['exFAT file system', (b) => at(b, 3, 'EXFAT   ')],
  ['BitLocker encrypted volume', (b) => at(b, 3, '-FVE-FS-')],
  ['NTFS file system', (b) => at(b, 3, 'NTFS    ')],
  ['FAT file system', (b) => b.length >= 512 && b.readUInt16LE(510) === 0xaa55 && (at(b, 54, 'FAT1') || at(b, 82, 'FAT32'))],
  ['ext2/3/4 file system', (b) => b.length >= 1082 && b.readUInt16LE(1080) === 0xef53],
  ['Linux swap', (b) => at(b, 4086, 'SWAPSPACE2') || at(b, 4086, 'SWAP-SPACE')],
  ['Linux RAID (md) member', (b) => u32(b, 4096) === 0xa92b4efc || u32(b, 0) === 0xa92b4efc],
  ['ISO 9660 image', (b) => at(b, 32769, 'CD001')],
  ['APFS container', (b) => at(b, 32, 'NXSB')],
  ['HFS+ file system', (b) => at(b, 1024, 'H+') || at(b, 1024, 'HX')],
  ['btrfs file system', (b) => at(b, 65600, '_BHRfS_M')],
];

/** What the first bytes of a volume say it holds, or undefined when nothing is recognised. */
export function identifyVolume(head: Buffer): string | undefined {
  for (const [name, test] of SIGNATURES) if (test(head)) return name;
  if (head.length > 0 && head.every((b) => b === 0)) return 'nothing (the first bytes are all zero: an empty or unformatted volume)';
  return undefined;
}
