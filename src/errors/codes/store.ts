import type { ErrorTable } from '../spec.js';

/** Errors of the volume store (storage/). */
export const STORE_ERRORS = {
  SV_ERR_STORE_NOT_FOUND: { status: 404, summary: 'No volume store exists at the given path.' },
  SV_ERR_STORE_LOCKED: { status: 409, summary: 'Another job holds the lock this operation needs (same data source, or gc).' },
  SV_ERR_STORE_BAD_VERSION: { status: 500, summary: 'The store (or one of its files) has a format version this build does not read.' },
  SV_ERR_STORE_CORRUPT_CONFIG: { status: 500, summary: 'store.json, a source settings file, bad.json or gc.json is not valid.' },
  SV_ERR_STORE_CORRUPT_MANIFEST: { status: 500, summary: 'A recovery point manifest is truncated, not JSON, fails its checksum or has invalid fields.' },
  SV_ERR_STORE_CORRUPT_INDEX: { status: 500, summary: 'An index segment is truncated, has a bad header, fails its checksum or is not sorted.' },
  SV_ERR_STORE_CORRUPT_PAGE: { status: 500, summary: 'An index page has the wrong size for its place in the tree.' },
  SV_ERR_STORE_CORRUPT_PACK: { status: 500, summary: 'A pack file record does not match the index (bad header, short read, wrong digest).' },
  SV_ERR_STORE_CORRUPT_REFS: { status: 500, summary: 'gc\'s reference table (gc-refs.bin) is truncated, fails its checksum or has invalid records; gc rebuilds it from the points.' },
  SV_ERR_STORE_MISSING_BLOB: { status: 500, summary: 'A block or page a recovery point names is not in the store index.' },
  SV_ERR_STORE_FOREIGN_FILE: { status: 500, summary: 'A file in the store folder is not a regular file (a FIFO, folder, device or link) or not one the store wrote; it is quarantined or ignored, never opened for reading.' },
  SV_ERR_STORE_NEEDS_REPAIR: { status: 409, summary: 'An index segment was quarantined and not yet rebuilt: gc refuses to run (it could delete packs only that segment named); run `shadowvault repair`.' },
  SV_ERR_STORE_BAD_NAME: { status: 400, summary: 'A data source name or point id has characters or a length the store does not accept.' },
  SV_ERR_STORE_SOURCE_NOT_FOUND: { status: 404, summary: 'The store has no data source of that name.' },
  SV_ERR_STORE_STATE_DIR_MISMATCH: { status: 409, summary: 'The local state folder (--state-dir: cache, locks, staging of an object-storage store) belongs to another store; give each store its own.' },
  SV_ERR_STORE_POINT_NOT_FOUND: { status: 404, summary: 'The data source has no recovery point with that id (or no points at all).' },
} as const satisfies ErrorTable;
