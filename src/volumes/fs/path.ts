/**
 * Path handling shared by the file-system readers: absolute, '/'-separated from the volume root, empty
 * components and '.' ignored. '..', NUL and relative paths are SV_ERR_FS_BAD_PATH (a reader never walks
 * above the root; the browse layer resolves its own paths).
 */
import { SvError } from '../../errors/index.js';

export function pathParts(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (!path.startsWith('/') || parts.includes('..') || path.includes('\0')) {
    throw new SvError('SV_ERR_FS_BAD_PATH', `${JSON.stringify(path)}: not an absolute volume path without '..' or NUL`, { path });
  }
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
