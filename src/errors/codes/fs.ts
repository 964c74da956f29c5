import type { ErrorTable } from '../spec.js';

/**
 * Errors of the file-system readers (src/volumes/fs/): paths that do not resolve, and damaged on-disk
 * structures. Every "bad structure" message names the structure, its location (MFT record, byte offset in
 * the volume) and what was expected and found.
 */
export const FS_ERRORS = {
  SV_ERR_FS_NOT_FOUND: { status: 404, summary: 'No such file, directory or named stream at that path in the file system.' },
  SV_ERR_FS_NOT_A_DIRECTORY: { status: 400, summary: 'A path component that must be a directory (to list it or to go through it) is a file.' },
  SV_ERR_FS_IS_A_DIRECTORY: { status: 400, summary: 'A directory was opened for reading as a file.' },
  SV_ERR_FS_BAD_PATH: { status: 400, summary: 'The path is not absolute, or holds an empty, NUL or over-long component.' },
  SV_ERR_FS_NTFS_BAD_BOOT: { status: 422, summary: 'The NTFS boot sector is not usable: signature, bytes per sector, cluster size, MFT location, record or index block size.' },
  SV_ERR_FS_NTFS_BAD_RECORD: { status: 422, summary: 'An MFT record (FILE) is damaged: signature, update-sequence fixups, header sizes, or it is not the record or file it should be.' },
  SV_ERR_FS_NTFS_BAD_ATTRIBUTE: { status: 422, summary: 'An NTFS attribute is damaged: it overruns its record, a resident value overruns it, a required attribute is missing, sizes disagree.' },
  SV_ERR_FS_NTFS_BAD_RUNLIST: { status: 422, summary: 'An NTFS runlist (mapping pairs) is damaged: it overruns its attribute, points outside the volume, or does not cover the VCNs it claims.' },
  SV_ERR_FS_NTFS_BAD_INDEX: { status: 422, summary: 'An NTFS $I30 index is damaged: INDX block signature, fixups, VCN, entry lengths, or a sub-node outside $INDEX_ALLOCATION.' },
  SV_ERR_FS_NTFS_BAD_COMPRESSION: { status: 422, summary: 'An LZNT1-compressed unit of an NTFS file does not decompress: bad chunk header, back-reference before the start, or output past the unit.' },
  SV_ERR_FS_NTFS_LOOP: { status: 422, summary: 'A cycle in NTFS metadata: runs mapping the same clusters twice, an attribute list naming an extent twice or another file, an index node reached twice.' },
  SV_ERR_FS_NTFS_TOO_LARGE: { status: 422, summary: 'An NTFS size or count is beyond what this reader accepts (attribute list, resident value, index depth, file size): refused rather than allocated.' },
  SV_ERR_FS_NTFS_UNSUPPORTED: { status: 422, summary: 'An NTFS feature this reader does not handle: encrypted ($EFS) data, compression with clusters above 4 KiB, an unknown compression format.' },
  SV_ERR_FS_EXT_CORRUPT: { status: 422, summary: 'An ext2/3/4 structure is damaged: superblock geometry, group descriptor, inode, extent tree node, block map pointer, directory entry, htree index or inline data; details name it, its byte offset, what was expected and found.' },
  SV_ERR_FS_EXT_LOOP: { status: 422, summary: 'A cycle in ext metadata: an extent tree or htree index reaches a block already visited on the same walk.' },
  SV_ERR_FS_EXT_UNSUPPORTED: { status: 422, summary: 'The ext volume uses an INCOMPAT feature this reader does not implement (compression, encryption, an external journal device, dirdata, or an unknown bit); details name it.' },
  SV_ERR_FS_FAT_CORRUPT: { status: 422, summary: 'A FAT structure is damaged: boot sector (BPB) values, a FAT entry that is free, bad or outside the volume inside a chain, a chain shorter than its file, a directory beyond 65536 entries.' },
  SV_ERR_FS_FAT_LOOP: { status: 422, summary: 'A FAT cluster chain comes back to a cluster it already passed through.' },
} as const satisfies ErrorTable;
