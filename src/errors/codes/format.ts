import type { ErrorTable } from '../spec.js';

/**
 * Errors of the virtual disk formats (src/formats/): VHD, VHDX, raw. Messages name the file, the structure,
 * the offset, what was expected and what was found. Codes here are shared by every format; a format's own
 * structural problems live in its area (codes/vhd.ts, codes/vhdx.ts).
 */
export const FORMAT_ERRORS = {
  SV_ERR_FORMAT_UNKNOWN: { status: 422, summary: 'The file is not a disk image format the product reads (VHD, VHDX, raw).' },
  SV_ERR_FORMAT_TRUNCATED: { status: 422, summary: 'The image ends before a structure it declares (file too short).' },
  SV_ERR_FORMAT_READ_RANGE: { status: 400, summary: 'A read asked for bytes outside the virtual disk.' },
  SV_ERR_FORMAT_PARENT_NOT_FOUND: { status: 422, summary: 'A differencing image names a parent that none of its locators finds on disk.' },
  SV_ERR_FORMAT_PARENT_MISMATCH: { status: 422, summary: 'The parent found for a differencing image is not the one it was made from (identity differs).' },
  SV_ERR_FORMAT_PARENT_CYCLE: { status: 422, summary: 'A differencing chain refers back to an image already in the chain.' },
  SV_ERR_FORMAT_CHAIN_TOO_DEEP: { status: 422, summary: 'A differencing chain is deeper than the reader allows.' },
  SV_ERR_FORMAT_OUTPUT_EXISTS: { status: 409, summary: 'The output image exists and overwriting was not asked for.' },
  SV_ERR_FORMAT_NO_WRITER: { status: 400, summary: 'No writer exists for the asked format or variant.' },
  SV_ERR_FORMAT_BAD_SOURCE: { status: 400, summary: 'A block source handed to a writer is out of order or has blocks of the wrong size.' },
  SV_ERR_FORMAT_BAD_OPTION: { status: 400, summary: 'A writer or reader option is out of range (block size, virtual size, parent).' },
  SV_ERR_FORMAT_NOT_A_DISK: { status: 422, summary: 'The path is neither a regular file nor a block device (a directory, FIFO, socket, character device, or a file of a pseudo file system such as /proc or /sys); refused before it is opened.' },
  SV_ERR_FORMAT_DEVICE_SIZE: { status: 422, summary: 'The size of a block device could not be determined (neither /sys/dev/block nor reading the device gave it).' },
  SV_ERR_FORMAT_CLOSED: { status: 500, summary: 'A disk image was used after close().' },
} as const satisfies ErrorTable;
