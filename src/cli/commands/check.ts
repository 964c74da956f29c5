/** `shadowvault check <image>... --source NAME`: consistency check of a replica against its source. */
import { backupLike } from './backup.js';

export const checkCommand = backupLike(true);
