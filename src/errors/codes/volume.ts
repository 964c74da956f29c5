import type { ErrorTable } from '../spec.js';

/** Errors of the volume layer (src/volumes/): partition tables read from a virtual disk. */
export const VOLUME_ERRORS = {
  SV_ERR_VOLUME_BAD_MBR: { status: 422, summary: 'The MBR or an extended boot record (EBR) is inconsistent: a partition outside the disk or its extended partition, a chain too long, a missing boot signature.' },
  SV_ERR_VOLUME_EBR_LOOP: { status: 422, summary: 'The chain of extended boot records (logical partitions) points back to an EBR already read.' },
  SV_ERR_VOLUME_BAD_GPT: { status: 422, summary: 'Both GPT headers (primary at LBA 1 and backup at the last LBA) are damaged: signature, CRC-32, location, entry size or partition bounds.' },
  SV_ERR_VOLUME_UNSUPPORTED: { status: 422, summary: 'The volume holds no file system this appliance reads (NTFS, ext2/3/4, FAT): LVM, XFS, ReFS, Windows dynamic disks, btrfs, LUKS, swap or unrecognised bytes; the message names what was found.' },
  SV_ERR_VOLUME_NOT_FOUND: { status: 404, summary: 'The disk has no volume (partition) with that index.' },
} as const satisfies ErrorTable;
