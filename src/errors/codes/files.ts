import type { ErrorTable } from '../spec.js';

/**
 * Errors of item-level restore (src/files/: `shadowvault files ...` and the API's files routes): what is asked
 * of the items of a recovery point, as opposed to damage in its file systems (SV_ERR_FS_*, SV_ERR_VOLUME_*).
 */
export const FILES_ERRORS = {
  SV_ERR_FILES_EXISTS: { status: 409, summary: 'A file or folder to restore already exists at the target (ask to overwrite it: --force, "overwrite": true).' },
  SV_ERR_FILES_BAD_TARGET: { status: 400, summary: 'The folder to restore items into is not a folder (or cannot be created there).' },
  SV_ERR_FILES_DIRECTORY_LOOP: { status: 422, summary: 'A directory of the file system contains one of its own ancestors (a damaged or hostile file system): the walk stops there.' },
  SV_ERR_FILES_TOO_MANY: { status: 422, summary: 'A walk (find, a folder restore or tar) met more entries or a deeper tree than the limits allow.' },
} as const satisfies ErrorTable;
