/**
 * Restore targets: the API may only write inside the configured restore roots. A target is refused when it
 * is relative, not normalised (`..`, `//`, trailing `/`), or when it or the nearest existing folder above it
 * resolves (following symbolic links) outside every root.
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, normalize, relative, sep } from 'node:path';
import { SvError } from '../errors/index.js';

function inside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

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
