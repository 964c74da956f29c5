/** What the `files` commands share: SOURCE[@POINT], --disk, --volume, --store, and the session around a run. */
import type { CliIo } from '../command.js';
import { SvError } from '../../errors/index.js';
import { openBrowse, type BrowseSession } from '../../files/browse.js';
import { closePool } from '../../pool/index.js';
import { openCliStore, STORE_OPTIONS } from '../store-open.js';

/**
 * A CLI process decodes reads below this on its own thread: a small file (or a file's short last chunk) then
 * starts no worker thread. Reads of 8 MiB (files/read-ahead.ts) still go to the pool.
 */
const CLI_INLINE_BYTES = 4 * 1024 * 1024;

export const SESSION_OPTIONS = {
  ...STORE_OPTIONS, disk: { type: 'string' }, volume: { type: 'string' }, json: { type: 'boolean' },
} as const;

/** `--disk` / `--volume`: an index (0, 1, ...) or undefined; anything else is a usage error. */
export function index(value: string | undefined, option: string, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new SvError('SV_ERR_CLI_BAD_USAGE', `${option} must be an index (0, 1, ...), not ${JSON.stringify(value)}\nusage: ${usage}`);
  return n;
}

export interface SessionArgs {
  readonly ref: string;
  readonly store?: string | undefined;
  readonly 'state-dir'?: string | undefined;
  readonly disk?: string;
  readonly volume?: string;
}

/** Open SOURCE[@POINT] disk N, run `fn`, close (release the hold) and stop the worker pool. */
export async function withSession<T>(a: SessionArgs, operation: string, usage: string, io: CliIo, fn: (s: BrowseSession, volume: number | undefined) => Promise<T>): Promise<T> {
  const at = a.ref.indexOf('@');
  const source = at < 0 ? a.ref : a.ref.slice(0, at);
  const point = at < 0 ? undefined : a.ref.slice(at + 1);
  if (!source) throw new SvError('SV_ERR_CLI_BAD_USAGE', `expected SOURCE[@POINT]\nusage: ${usage}`);
  const disk = index(a.disk, '--disk', usage) ?? 0;
  const volume = index(a.volume, '--volume', usage);
  try {
    const store = await openCliStore(a, io);
    try {
      const s = await openBrowse({ store, source, point, disk, operation, inlineBytes: CLI_INLINE_BYTES });
      try {
        return await fn(s, volume);
      } finally {
        await s.close();
      }
    } finally {
      await store.close().catch(() => undefined);
    }
  } finally {
    await closePool();
  }
}

/** A name for a terminal: control characters and the like shown as JSON escapes, the rest as is. */
export function displayName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f\u2028\u2029]|[\ud800-\udfff]/u.test(name) || name === '' ? JSON.stringify(name) : name;
}

export function shortTime(iso: string | null): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/u, '') : '-';
}
