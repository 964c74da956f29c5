import type { ErrorTable } from '../spec.js';

/** Errors of the native hot-path addon (native/) and its loader (src/native/). */
export const NATIVE_ERRORS = {
  SV_ERR_NATIVE_NOT_BUILT: { status: 500, summary: 'The native addon file is missing: run `npm run build:native` (or `npm run setup`).' },
  SV_ERR_NATIVE_LOAD_FAILED: { status: 500, summary: 'The native addon exists but could not be loaded (wrong platform or Node ABI).' },
  SV_ERR_NATIVE_DIGEST_MISMATCH: { status: 500, summary: 'A block payload decoded to bytes whose BLAKE3 digest is not the expected one.' },
  SV_ERR_NATIVE_CORRUPT_PAYLOAD: { status: 500, summary: 'A block payload is not a valid raw or zstd frame.' },
  SV_ERR_NATIVE_BAD_ARGUMENT: { status: 500, summary: 'The native addon was called with arguments of the wrong type or size.' },
  SV_ERR_NATIVE_INTERNAL: { status: 500, summary: 'A Node-API call or the zstd library failed inside the addon, or the addon panicked.' },
} as const satisfies ErrorTable;
