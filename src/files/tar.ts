/**
 * `files get --tar -` and the API's folder download: files and folders of a recovery point's file system as a
 * pax/ustar stream (tar-format.ts), produced as it is read (nothing is staged). Paths are the escaped names
 * (names.ts) joined by '/', relative, so extracting the archive never writes outside the folder it is
 * extracted in; entries a folder would get twice (same escaped name), names that cannot be part of a path, and
 * device files/FIFOs are left out and reported through `onSkip`. Times: mtime (pax when it has milliseconds) and
 * atime with it; modes from the file system when it has them.
 */
import { SvError } from '../errors/index.js';
import type { DirEntry, FileSystem } from '../volumes/fs/types.js';
import { escapeName } from './names.js';
import { readAhead } from './read-ahead.js';
import { END_OF_ARCHIVE, entryHeader, padding } from './tar-format.js';
import { walkTree, type WalkLimits } from './walk.js';

export interface TarOptions extends WalkLimits {
  readonly onSkip?: (path: string, reason: string) => void;
  readonly signal?: AbortSignal;
}

function mode(e: DirEntry, fallback: number): number {
  return e.mode !== undefined ? e.mode & 0o777 : fallback;
}

export async function* tarItems(fs: FileSystem, paths: readonly string[], opts: TarOptions = {}): AsyncGenerator<Buffer> {
  const skip = opts.onSkip ?? (() => undefined);
  const topSeen = new Set<string>();
  for (const path of paths) {
    const stack: Array<{ rel: string; seen: Set<string> }> = [{ rel: '', seen: topSeen }];
    for await (const ev of walkTree(fs, path, opts)) {
      if (opts.signal?.aborted) throw new SvError('SV_ERR_CORE_CANCELLED', 'tar stream cancelled', {});
      if (ev.parts.length === 0) continue; // the volume root: its contents are the archive's top level
      if (ev.type === 'leave') {
        stack.pop();
        continue;
      }
      const parent = stack[stack.length - 1]!;
      const e = ev.entry;
      if (ev.type === 'unaddressable') {
        skip(ev.path, `its name ${JSON.stringify(e.name)} cannot be part of a path in the file system`);
        continue;
      }
      if (e.type === 'other') {
        skip(ev.path, 'not a file, folder or symbolic link (device, FIFO or socket)');
        continue;
      }
      const { name } = escapeName(e.name);
      if (parent.seen.has(name)) {
        if (e.type === 'directory') throw new SvError('SV_ERR_FILES_DIRECTORY_LOOP', `${ev.path}: a second folder of the same name in one folder; the file system is damaged`, { path: ev.path });
        skip(ev.path, `another entry of the folder is also named "${name}"`);
        continue;
      }
      parent.seen.add(name);
      const rel = parent.rel ? `${parent.rel}/${name}` : name;
      const mtime = e.times.modified ?? 0;
      const atime = e.times.accessed;
      if (e.type === 'directory') {
        yield entryHeader({ path: rel, type: 'directory', size: 0, mode: mode(e, 0o755), mtime, atime });
        stack.push({ rel, seen: new Set() });
      } else if (e.type === 'symlink') {
        yield entryHeader({ path: rel, type: 'symlink', size: 0, mode: mode(e, 0o777), mtime, atime, linkname: e.target ?? '' });
      } else {
        const handle = await fs.open(ev.path);
        yield entryHeader({ path: rel, type: 'file', size: handle.size, mode: mode(e, 0o644), mtime, atime });
        for await (const chunk of readAhead(handle, ev.path)) yield chunk;
        const pad = padding(handle.size);
        if (pad.length) yield pad;
      }
    }
  }
  yield END_OF_ARCHIVE;
}
