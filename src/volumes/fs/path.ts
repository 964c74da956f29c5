/**
 * Path handling shared by the file-system readers: '/'-separated from the volume root, empty components and
 * '.' ignored. '..' is refused rather than resolved (a reader never walks above the root, and the browse layer
 * resolves its own paths).
 */
import { SvError } from '../../errors/index.js';

export function pathParts(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new SvError('SV_ERR_FS_BAD_PATH', `${path}: '..' is not resolved in volume paths`, { path });
  return parts;
}

export function notFound(fsName: string, path: string): SvError {
  return new SvError('SV_ERR_FS_NOT_FOUND', `${fsName}: ${path}: no such file or directory`, { path });
}

export function notADirectory(fsName: string, path: string): SvError {
  return new SvError('SV_ERR_FS_NOT_A_DIRECTORY', `${fsName}: ${path}: not a directory`, { path });
}

export function isADirectory(fsName: string, path: string): SvError {
  return new SvError('SV_ERR_FS_IS_A_DIRECTORY', `${fsName}: ${path}: is a directory`, { path });
}
