/**
 * Depth-first walk of a file system tree (FileSystem, src/volumes/fs/types.ts) for `files get`, `--tar` and
 * `find`: each entry once, a directory before its contents ('entry') and again after them ('leave', where its
 * times are set). Defences against hostile images: a directory that is one of its own ancestors (same id) stops
 * the walk with SV_ERR_FILES_DIRECTORY_LOOP; more than `maxEntries` entries or a tree deeper than `maxDepth` is
 * SV_ERR_FILES_TOO_MANY; an entry whose name cannot be part of a path ('/' or NUL inside, ".", "..", empty) is reported
 * as 'unaddressable' and not opened (its path would name something else).
 */
import { SvError } from '../errors/index.js';
import type { DirEntry, FileSystem } from '../volumes/fs/types.js';

export interface WalkLimits {
  readonly maxEntries?: number;
  readonly maxDepth?: number;
}

export type WalkEvent =
  | { readonly type: 'entry'; readonly path: string; readonly parts: readonly string[]; readonly entry: DirEntry }
  | { readonly type: 'leave'; readonly path: string; readonly parts: readonly string[]; readonly entry: DirEntry }
  | { readonly type: 'unaddressable'; readonly path: string; readonly parts: readonly string[]; readonly entry: DirEntry };

export const DEFAULT_MAX_ENTRIES = 10_000_000;
export const DEFAULT_MAX_DEPTH = 1024;

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Can `name` be one component of a '/'-separated path? (The readers refuse paths holding NUL: SV_ERR_FS_BAD_PATH.) */
export function addressable(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/**
 * Walk from `path` (its own entry first, with `parts` = [its name], or [] for the root '/'). `parts` are the raw
 * names from the walk's start, for building output paths.
 */
export async function* walkTree(fs: FileSystem, path: string, limits: WalkLimits = {}): AsyncGenerator<WalkEvent> {
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  const top = await fs.stat(path);
  let count = 0;
  const ancestors: number[] = [];
  const startParts = path === '/' || path === '' ? [] : [top.name];

  async function* visit(p: string, parts: readonly string[], entry: DirEntry): AsyncGenerator<WalkEvent> {
    if (++count > maxEntries) throw new SvError('SV_ERR_FILES_TOO_MANY', `${p}: more than ${maxEntries} entries under ${path}`, { path, limit: maxEntries });
    yield { type: 'entry', path: p, parts, entry };
    if (entry.type !== 'directory') return;
    if (ancestors.includes(entry.id)) {
      throw new SvError('SV_ERR_FILES_DIRECTORY_LOOP', `${p}: directory (id ${entry.id}) is one of its own ancestors; the file system is damaged`, { path: p, id: entry.id });
    }
    if (parts.length > maxDepth) throw new SvError('SV_ERR_FILES_TOO_MANY', `${p}: deeper than ${maxDepth} levels`, { path: p, limit: maxDepth });
    ancestors.push(entry.id);
    for (const child of await fs.list(p)) {
      const cp = joinPath(p, child.name);
      const cparts = [...parts, child.name];
      if (!addressable(child.name)) {
        yield { type: 'unaddressable', path: cp, parts: cparts, entry: child };
        continue;
      }
      yield* visit(cp, cparts, child);
    }
    ancestors.pop();
    yield { type: 'leave', path: p, parts, entry };
  }

  yield* visit(path === '' ? '/' : path, startParts, top);
}
