/**
 * Temp files of the disk writers (formats/write.ts) and their cleanup. A writer writes `.<name>.tmp-<pid>-<8
 * hex>` next to its output and renames it into place; a killed restore leaves that file behind, full size.
 *
 * A temp file is stale, and removed, only when BOTH hold: the process named by its pid is gone (kill(pid, 0)
 * says ESRCH; this process's own pid always counts as alive), and it has not been modified for the grace
 * period (a pid can be reused, or live in another pid namespace sharing the folder). A live writer's temp file
 * is never touched. Cleanup runs at appliance start over the restore roots and before each appliance restore
 * in its target folder; folders are walked through ConfinedDir (no symbolic link is followed).
 */
import { randomBytes } from 'node:crypto';
import { lstat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfinedDir } from './confined.js';

/** Temp files untouched for less than this are kept even when their process is gone. */
export const STALE_TEMP_GRACE_MS = 15 * 60_000;
/** Folders below a root visited at start, at most (a bound on the walk, not a limit on restores). */
const MAX_WALK_DIRS = 10_000;

const TEMP_NAME = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/;

/** The temp name for a writer's output `name` in the same folder. */
export function tempName(name: string): string {
  return `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Does process `pid` (of this machine) still run? This process always does. */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'; // EPERM: alive, someone else's
  }
}

export interface CleanOptions {
  readonly now?: number;
  readonly graceMs?: number;
}

/** Remove the stale temp files directly in `dir` (held open); returns their names. */
export async function removeStaleTemps(dir: ConfinedDir, options: CleanOptions = {}): Promise<string[]> {
  const now = options.now ?? Date.now();
  const grace = options.graceMs ?? STALE_TEMP_GRACE_MS;
  const removed: string[] = [];
  for (const e of await dir.list()) {
    const m = TEMP_NAME.exec(e.name);
    if (!m || !e.isFile() || processAlive(Number(m[2]))) continue;
    const st = await lstat(dir.at(e.name)).catch(() => undefined);
    if (!st?.isFile() || now - st.mtimeMs < grace) continue;
    if (await unlink(dir.at(e.name)).then(() => true, () => false)) removed.push(e.name);
  }
  return removed;
}

/** Remove stale temp files in every folder under the roots (no symbolic link followed); returns their paths. */
export async function removeStaleTempsUnder(roots: readonly string[], options: CleanOptions = {}): Promise<string[]> {
  const removed: string[] = [];
  const queue = [...roots];
  for (let visited = 0; queue.length && visited < MAX_WALK_DIRS; visited++) {
    const path = queue.shift()!;
    const dir = await ConfinedDir.open(path, roots).catch(() => undefined);
    if (!dir) continue;
    try {
      for (const name of await removeStaleTemps(dir, options)) removed.push(join(path, name));
      for (const e of await dir.list()) if (e.isDirectory()) queue.push(join(path, e.name));
    } finally {
      await dir.close();
    }
  }
  return removed;
}
