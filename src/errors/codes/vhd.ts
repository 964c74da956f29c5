import type { ErrorTable } from '../spec.js';

/**
 * Errors of the VHD reader and writers (src/formats/vhd/): structures of Microsoft's Virtual Hard Disk Image
 * Format Specification. Messages name the file, the structure, the offset, what was expected and what was found.
 */
export const VHD_ERRORS = {
  SV_ERR_VHD_BAD_FOOTER: { status: 422, summary: 'The VHD footer (hard disk footer) is missing or has invalid fields.' },
  SV_ERR_VHD_FOOTER_CHECKSUM: { status: 422, summary: 'The VHD footer checksum does not match its contents (and no valid copy exists).' },
  SV_ERR_VHD_BAD_HEADER: { status: 422, summary: 'The VHD dynamic disk header has an invalid cookie, version, block size or table.' },
  SV_ERR_VHD_HEADER_CHECKSUM: { status: 422, summary: 'The VHD dynamic disk header checksum does not match its contents.' },
  SV_ERR_VHD_BAD_BAT: { status: 422, summary: 'A VHD block allocation table entry points past the end of file or over metadata or another block.' },
  SV_ERR_VHD_BAD_SIZE: { status: 422, summary: 'The VHD declares an absurd or inconsistent size (virtual size, table size, block size).' },
  SV_ERR_VHD_UNSUPPORTED: { status: 422, summary: 'The VHD uses a disk type or feature this reader does not support.' },
  SV_ERR_VHD_BAD_LOCATOR: { status: 422, summary: 'A VHD parent locator entry points outside the file or holds an undecodable path.' },
  SV_ERR_VHD_TOO_LARGE: { status: 400, summary: 'The disk is larger than a VHD can hold (2040 GiB).' },
} as const satisfies ErrorTable;
