import type { ErrorTable } from '../spec.js';

/**
 * Errors of the VHDX reader and writer (src/formats/vhdx/). Messages name the file, the structure, the offset,
 * what was expected and what was found; details carry { path, structure, offset, expected, found }.
 */
export const VHDX_ERRORS = {
  SV_ERR_VHDX_SIGNATURE: { status: 422, summary: 'A VHDX structure does not start with its signature (vhdxfile, head, regi, metadata, loge...).' },
  SV_ERR_VHDX_CHECKSUM: { status: 422, summary: 'The CRC-32C stored in a VHDX header, region table or log entry does not match its content.' },
  SV_ERR_VHDX_NO_VALID_HEADER: { status: 422, summary: 'Neither of the two VHDX headers (64 KiB, 128 KiB) is valid.' },
  SV_ERR_VHDX_REGION_TABLE: { status: 422, summary: 'The VHDX region table is invalid: no valid copy, bad or overlapping region, required region missing or unknown.' },
  SV_ERR_VHDX_METADATA: { status: 422, summary: 'A VHDX metadata table entry or item is invalid (missing required item, bad size, value out of range).' },
  SV_ERR_VHDX_UNSUPPORTED: { status: 422, summary: 'The VHDX uses a version or a required feature this reader does not know.' },
  SV_ERR_VHDX_BAT: { status: 422, summary: 'A VHDX BAT entry is invalid: reserved state, block past the end of the file or overlapping other structures.' },
  SV_ERR_VHDX_LOG: { status: 422, summary: 'The VHDX log must be replayed but holds no valid active sequence, or replaying it is impossible.' },
  SV_ERR_VHDX_PARENT_LOCATOR: { status: 422, summary: 'The parent locator of a differencing VHDX is missing, malformed, or names no usable path.' },
} as const satisfies ErrorTable;
