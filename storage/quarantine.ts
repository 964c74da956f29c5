/**
 * Quarantine: where damaged or foreign store files go instead of being read, deleted or left to block others.
 *
 * Layout:
 *   <store>/quarantine/<stamp>-<area>-<name>            the file (or FIFO, folder...) as it was, moved with rename(2)
 *   <store>/quarantine/<stamp>-<area>-<name>.why.json   {from, area, reason, code, time}
 *   <store>/quarantine/needs-repair.json                 present while a quarantined index segment has not been
 *                                                        rebuilt by `repair` ({since, files: [...]})
 * `stamp` is the time of the move (YYYYMMDDTHHMMSSmmmZ), `area` the store folder it came from (index, packs,
 * points-<source>, ...).
 *
 * Invariants: nothing is ever deleted here (an operator or a repair that rebuilt what the file held may remove
 * it); the move is one rename in the same file system followed by fsyncs of both folders, so a crash leaves the
 * file in one of the two places. Two processes quarantining the same file: the second rename finds nothing
 * (ENOENT) and is a no-op. No lock is needed: a file is only quarantined after it failed its checks, and every
 * check is of an immutable, completely written file (atomicWrite) or of a name the store never writes.
 *
 * needs-repair.json exists because the entries of a quarantined segment are gone from the index: the packs only
 * it named look like orphans, and gc would delete them. gc refuses to run while it exists
 * (SV_ERR_STORE_NEEDS_REPAIR); repair rebuilds the entries from the packs and removes it.
 */
import { mkdir, readFile, rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { atomicWrite, fsyncDir, isMissing, listDir, removeFile } from './fsutil.js';

export const QUARANTINE_DIR = 'quarantine';
export const NEEDS_REPAIR_FILE = 'needs-repair.json';
const WHY_SUFFIX = '.why.json';

export interface QuarantineEntry {
  /** File name in the quarantine folder. */
  readonly name: string;
  readonly from: string;
  readonly area: string;
  readonly reason: string;
  readonly code: string;
  readonly time: string;
}

function stamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '').replace('.', '');
}

export function quarantineDir(storeDir: string): string {
  return join(storeDir, QUARANTINE_DIR);
}

/**
 * Move `path` (of store folder `area`) into the quarantine with its reason. Returns the entry, or undefined
 * when the file was already gone (quarantined by another process, or removed by gc).
 */
export async function quarantineFile(storeDir: string, path: string, area: string, reason: string, code: string): Promise<QuarantineEntry | undefined> {
  const dir = quarantineDir(storeDir);
  await mkdir(dir, { recursive: true });
  const time = new Date();
  const name = `${stamp(time)}-${area}-${basename(path)}`;
  try {
    await rename(path, join(dir, name));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  const entry: QuarantineEntry = { name, from: path, area, reason, code, time: time.toISOString() };
  await atomicWrite(join(dir, `${name}${WHY_SUFFIX}`), JSON.stringify(entry, null, 1));
  await fsyncDir(join(path, '..'));
  return entry;
}

/** What the quarantine holds (files, FIFOs, folders moved there), oldest first. */
export async function listQuarantine(storeDir: string): Promise<QuarantineEntry[]> {
  const dir = quarantineDir(storeDir);
  const out: QuarantineEntry[] = [];
  for (const name of (await listDir(dir)).sort()) {
    if (name.endsWith(WHY_SUFFIX) || name === NEEDS_REPAIR_FILE || name.includes('.tmp-')) continue;
    let why: Partial<QuarantineEntry> = {};
    try {
      why = JSON.parse(await readFile(join(dir, `${name}${WHY_SUFFIX}`), 'utf8')) as Partial<QuarantineEntry>;
    } catch {
      /* no or unreadable note: the file is still listed */
    }
    out.push({ name, from: String(why.from ?? ''), area: String(why.area ?? ''), reason: String(why.reason ?? ''), code: String(why.code ?? ''), time: String(why.time ?? '') });
  }
  return out;
}

/** Record that quarantined index segments wait for a repair (gc refuses meanwhile). */
export async function markNeedsRepair(storeDir: string, files: readonly string[]): Promise<void> {
  const path = join(quarantineDir(storeDir), NEEDS_REPAIR_FILE);
  const have = await needsRepair(storeDir);
  const all = [...new Set([...(have?.files ?? []), ...files])];
  await atomicWrite(path, JSON.stringify({ since: have?.since ?? new Date().toISOString(), files: all }, null, 1));
}

/** The pending repair, if any. An unreadable marker still counts (the safe side). */
export async function needsRepair(storeDir: string): Promise<{ since: string; files: string[] } | undefined> {
  const path = join(quarantineDir(storeDir), NEEDS_REPAIR_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isMissing(err)) return undefined;
    return { since: '', files: [] };
  }
  try {
    const v = JSON.parse(text) as { since?: unknown; files?: unknown };
    return { since: String(v.since ?? ''), files: Array.isArray(v.files) ? v.files.map(String) : [] };
  } catch {
    return { since: '', files: [] };
  }
}

export async function clearNeedsRepair(storeDir: string): Promise<void> {
  if (await removeFile(join(quarantineDir(storeDir), NEEDS_REPAIR_FILE))) await fsyncDir(quarantineDir(storeDir));
}
