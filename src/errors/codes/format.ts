import type { ErrorTable } from '../spec.js';

/**
 * Errors of the virtual disk formats (src/formats/): VHD, VHDX, raw. Messages name the file, the structure,
 * the offset, what was expected and what was found.
 */
export const FORMAT_ERRORS = {
  SV_ERR_FORMAT_UNKNOWN: { status: 422, summary: 'The file is not a disk image format the product reads (VHD, VHDX, raw).' },
  SV_ERR_FORMAT_TRUNCATED: { status: 422, summary: 'The image ends before a structure it declares (file too short).' },
  SV_ERR_FORMAT_READ_RANGE: { status: 400, summary: 'A read asked for bytes outside the virtual disk.' },
} as const satisfies ErrorTable;
