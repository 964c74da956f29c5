/**
 * Paths the API accepts, checked when a request arrives (a first line only: the files are checked again
 * when a job opens them, src/util/confined.ts, because a folder can be swapped for a link in between).
 *
 * Restore targets: the API may only write inside the configured restore roots. A target is refused when it
 * is relative, not normalised (`..`, `//`, trailing `/`), or when it or the nearest existing folder above it
 * resolves (following symbolic links) outside every root.
 *
 * Source disks: a disk path must lie inside a folder source root (by name and by real path, as far as it
 * exists), or name a block-device source root itself (directly or through a link to it). A block device
 * under a folder root (e.g. a root /dev) is refused: devices are allowed only one by one.
 */
import { realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, normalize, sep } from 'node:path';
import { SvError } from '../errors/index.js';
import { isInside as inside } from '../util/confined.js';

function realExisting(path: string): string {
  let p = path;
  const tail: string[] = [];
  for (;;) {
    try {
      const real = realpathSync(p);
      return tail.length ? `${real}${sep}${tail.reverse().join(sep)}` : real;
    } catch {
      const up = dirname(p);
      if (up === p) return path;
      tail.push(p.slice(up.length + (up.endsWith(sep) ? 0 : 1)));
      p = up;
    }
  }
}

/** The target, checked; throws SV_ERR_API_PATH_NOT_ALLOWED when it lies outside every root. */
export function checkRestoreTarget(target: string, roots: readonly string[]): string {
  const refuse = (why: string): never => {
    throw new SvError('SV_ERR_API_PATH_NOT_ALLOWED', `restore target "${target}" refused: ${why}`, { target, allowedRoots: [...roots] });
  };
  if (!isAbsolute(target)) refuse('it must be an absolute path');
  if (target.includes('\0')) refuse('it contains a NUL byte');
  if (normalize(target) !== target || (target.length > 1 && target.endsWith(sep))) refuse('it must be normalised (no "..", ".", "//" or trailing "/")');
  const real = realExisting(target);
  const ok = roots.some((r) => inside(target, r) && inside(real, realExisting(r)) && target !== r);
  if (!ok) refuse(`it is not inside an allowed restore root (${roots.join(', ')})`);
  return target;
}

function isBlockDevice(path: string): boolean {
  try {
    return statSync(path).isBlockDevice();
  } catch {
    return false;
  }
}

/** Throws SV_ERR_API_PATH_NOT_ALLOWED unless every disk path lies under a source root (see the top comment). */
export function checkSourceDisks(disks: readonly { name: string; path: string }[], roots: readonly string[]): void {
  for (const d of disks) {
    const real = realExisting(d.path);
    const device = isBlockDevice(real);
    const ok = roots.some((r) => {
      const rootReal = realExisting(r);
      if (isBlockDevice(rootReal)) return d.path === r || real === rootReal;
      return !device && d.path !== r && inside(d.path, r) && inside(real, rootReal);
    });
    if (!ok) {
      const why = device ? `it is a block device (${real}) that no --source-root names` : 'it is not inside a source root';
      throw new SvError('SV_ERR_API_PATH_NOT_ALLOWED', `disk "${d.name}" path "${d.path}" refused: ${why} (source roots: ${roots.join(', ')})`, {
        disk: d.name, path: d.path, allowedRoots: [...roots],
      });
    }
  }
}
