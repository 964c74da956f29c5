/**
 * Directory listings as the CLI (--json) and the API return them: one entry per name with ISO times, and the
 * named streams of each file when asked (`-l` / `?streams=1`). A path naming a file lists that one entry; `entry`
 * is the path's own (a folder's too).
 */
import type { DirEntry, FileSystem, StreamInfo } from '../volumes/fs/types.js';
import { joinPath } from './walk.js';

export interface ListedEntry {
  readonly name: string;
  readonly type: DirEntry['type'];
  readonly size: number;
  readonly modified: string | null;
  readonly accessed: string | null;
  readonly created: string | null;
  readonly changed: string | null;
  readonly id: number;
  readonly target?: string;
  readonly dosName?: string;
  readonly mode?: number;
  readonly attributes?: number;
  readonly streams?: StreamInfo[];
}

export interface Listing {
  readonly path: string;
  readonly type: DirEntry['type'];
  /** The path's own entry (a folder's too: its times, for `files get --url`). */
  readonly entry: ListedEntry;
  readonly entries: ListedEntry[];
}

const iso = (ms: number | undefined): string | null => (ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString());

export function listedEntry(e: DirEntry, streams?: StreamInfo[]): ListedEntry {
  return {
    name: e.name, type: e.type, size: e.size,
    modified: iso(e.times.modified), accessed: iso(e.times.accessed), created: iso(e.times.created), changed: iso(e.times.changed), id: e.id,
    ...(e.target !== undefined ? { target: e.target } : {}),
    ...(e.dosName !== undefined ? { dosName: e.dosName } : {}),
    ...(e.mode !== undefined ? { mode: e.mode } : {}),
    ...(e.attributes !== undefined ? { attributes: e.attributes } : {}),
    ...(streams ? { streams } : {}),
  };
}

export function normalizePath(path: string | undefined): string {
  const p = (path ?? '/').replace(/\/+$/u, '');
  return p === '' ? '/' : p.startsWith('/') ? p : `/${p}`;
}

export async function listPath(fs: FileSystem, rawPath: string | undefined, withStreams = false): Promise<Listing> {
  const path = normalizePath(rawPath);
  const self = await fs.stat(path);
  const entries = self.type === 'directory' ? await fs.list(path) : [self];
  const out: ListedEntry[] = [];
  for (const e of entries) {
    const full = self.type === 'directory' ? joinPath(path, e.name) : path;
    const streams = withStreams && e.type === 'file' && !e.name.includes('/') ? await fs.streams(full) : undefined;
    out.push(listedEntry(e, streams));
  }
  return { path, type: self.type, entry: listedEntry(self), entries: out };
}
