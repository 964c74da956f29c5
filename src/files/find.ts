/**
 * `files find`: entries of a file system whose name (or, when the pattern holds a '/', whose whole path) matches
 * a shell pattern: `*` any run of characters (not '/'), `?` one character, `[abc]` / `[a-z]` / `[!abc]` a set,
 * `**` any run including '/'. Case-insensitive on file systems that are (NTFS, FAT), exact on ext.
 */
import type { DirEntry, FileSystem } from '../volumes/fs/types.js';
import { walkTree, type WalkLimits } from './walk.js';

export function globToRegExp(pattern: string, caseSensitive: boolean): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let set = pattern.slice(i + 1, end);
        const negate = set.startsWith('!') || set.startsWith('^');
        if (negate) set = set.slice(1);
        re += `[${negate ? '^' : ''}${set.replace(/[\\\]^]/g, '\\$&')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, caseSensitive ? 'su' : 'isu');
}

export interface FoundEntry {
  readonly path: string;
  readonly entry: DirEntry;
}

/** Every entry under `root` matching `pattern`, in walk order. */
export async function* findItems(fs: FileSystem, pattern: string, root = '/', limits: WalkLimits = {}): AsyncGenerator<FoundEntry> {
  const re = globToRegExp(pattern, fs.caseSensitive);
  const byPath = pattern.includes('/');
  for await (const ev of walkTree(fs, root, limits)) {
    if (ev.type === 'leave' || ev.parts.length === 0) continue;
    if (re.test(byPath ? ev.path : ev.entry.name)) yield { path: ev.path, entry: ev.entry };
  }
}
