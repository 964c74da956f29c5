/**
 * Scratch folders of writable exports and their cleanup. An exporter makes its overlay's folder as
 * `sv-export-<pid>-<start>-<random>` under the scratch root, where <start> is its own process start time
 * (field 22 of /proc/<pid>/stat, clock ticks since boot; 0 where /proc is missing). A killed exporter
 * (kill -9) cannot remove it, and the overlay file in it can be as large as the writes made.
 *
 * A folder is stale, and removed, only when its exporter is gone: no process with that pid
 * (util/stale-temps.ts processAlive), or one with the pid but another start time (the pid was reused).
 * A live exporter's folder is never touched; folders not named this way (older versions, other tools)
 * neither. Cleanup runs before each writable export creates its own folder, in the same root.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../util/stale-temps.js';

const SCRATCH_NAME = /^sv-export-(\d+)-(\d+)-[A-Za-z0-9]{6}$/;

/** Start time of process `pid` in clock ticks since boot, or 0 when unknown (no /proc, or gone). */
export function processStartTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its last ')'.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start && /^\d+$/.test(start) ? Number(start) : 0;
  } catch {
    return 0;
  }
}

/** Make this process's scratch folder under `root`. */
export function makeScratchDir(root: string): Promise<string> {
  return mkdtemp(join(root, `sv-export-${process.pid}-${processStartTime(process.pid)}-`));
}

function exporterAlive(pid: number, start: number): boolean {
  if (!processAlive(pid)) return false;
  const now = processStartTime(pid);
  return now === 0 || start === 0 || now === start; // unknown start time: count it alive
}

/** Remove the scratch folders of dead exporters directly under `root`; returns their paths. */
export async function removeStaleScratch(root: string): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const m = SCRATCH_NAME.exec(e.name);
    if (!m || !e.isDirectory() || exporterAlive(Number(m[1]), Number(m[2]))) continue;
    const path = join(root, e.name);
    if (await rm(path, { recursive: true, force: true }).then(() => true, () => false)) removed.push(path);
  }
  return removed;
}
