/**
 * A volume of a recovery point on a running appliance as a FileSystem (src/volumes/fs/types.ts), for
 * `files get|find --url`: the same walkers and writers as the local commands (files/extract.ts, tar.ts,
 * find.ts) run over the appliance's item-level restore routes (docs/API.md), so escaping, confinement, temp
 * files and times behave exactly as locally.
 *
 * CONTRACT (beyond FileSystem's):
 * - `stat`/`list` are GET .../files?path=P (one request each; a listing also remembers its entries, so
 *   opening a file just listed costs no extra request). `streams` adds &streams=true.
 * - A handle's `read(offset, length)` is one GET .../content?path=P[&stream=S] with `Range: bytes=a-b`;
 *   the answer must be exactly the bytes asked (else SV_ERR_API_REMOTE). Read-ahead (files/read-ahead.ts)
 *   keeps a few such requests in flight.
 * - Errors come back as the appliance's catalogued SvError (SV_ERR_FS_NOT_FOUND, ...); a connection failure
 *   or a malformed answer is SV_ERR_API_REMOTE.
 */
import { SvError, fromWire, type WireError } from '../errors/index.js';
import { joinPath } from '../files/walk.js';
import type { ListedEntry, Listing } from '../files/listing.js';
import type { DirEntry, FileHandle, FileSystem, StreamInfo } from '../volumes/fs/types.js';
import type { RemoteClient } from './remote.js';

/** The file system of a volume as GET .../volumes lists it. */
export interface RemoteFsInfo {
  readonly type: FileSystem['type'];
  readonly label: string;
  readonly uuid: string;
  readonly blockSize: number;
}

const ms = (iso: string | null): number | undefined => (iso === null ? undefined : Date.parse(iso));

/** A listed entry (ISO times) back into a DirEntry (milliseconds). */
export function dirEntryOf(e: ListedEntry): DirEntry {
  return {
    name: e.name, type: e.type, size: e.size, id: e.id,
    times: { modified: ms(e.modified), accessed: ms(e.accessed), created: ms(e.created), changed: ms(e.changed) },
    ...(e.target !== undefined ? { target: e.target } : {}),
    ...(e.dosName !== undefined ? { dosName: e.dosName } : {}),
    ...(e.mode !== undefined ? { mode: e.mode } : {}),
    ...(e.attributes !== undefined ? { attributes: e.attributes } : {}),
  };
}

/**
 * An authenticated GET of bytes [start, end) of `path` (a Range request); exactly end - start bytes or
 * SV_ERR_API_REMOTE. Appliance errors come back as their SvError.
 */
export async function fetchRange(api: RemoteClient, path: string, start: number, end: number): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetch(new URL(path, api.url.endsWith('/') ? api.url : `${api.url}/`), {
      headers: { authorization: `Bearer ${api.token}`, range: `bytes=${start}-${end - 1}` },
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new SvError('SV_ERR_API_REMOTE', `cannot reach the appliance at ${api.url}: ${cause?.code ?? ''} ${cause?.message ?? (err as Error).message}`.trim(), { url: api.url }, { cause: err });
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) {
    let w: Partial<WireError> | undefined;
    try {
      w = JSON.parse(body.toString('utf8')) as Partial<WireError>;
    } catch {
      w = undefined;
    }
    if (w && typeof w.code === 'string' && typeof w.message === 'string') throw fromWire(w as WireError);
    throw new SvError('SV_ERR_API_REMOTE', `the appliance at ${api.url} answered ${res.status}`, { url: api.url, status: res.status });
  }
  // 200 (the whole body) is acceptable only when the range was the whole of it.
  const data = res.status === 206 ? body : start === 0 && body.length === end ? body : null;
  if (!data || data.length !== end - start) {
    throw new SvError('SV_ERR_API_REMOTE', `the appliance at ${api.url} answered ${res.status} with ${body.length} bytes for bytes ${start}-${end - 1}`, { url: api.url, status: res.status, start, end, found: body.length });
  }
  return data;
}

export class RemoteFileSystem implements FileSystem {
  readonly type: FileSystem['type'];
  readonly label: string;
  readonly uuid: string;
  readonly blockSize: number;
  readonly caseSensitive: boolean;
  readonly #api: RemoteClient;
  readonly #base: string;
  /** Entries seen in listings, by path (sizes for open without another request). */
  readonly #seen = new Map<string, DirEntry>();

  /** `base`: `api/v1/sources/ID/points/P/disks/D/volumes/V` (no trailing slash). */
  constructor(api: RemoteClient, base: string, info: RemoteFsInfo) {
    this.#api = api;
    this.#base = base;
    this.type = info.type;
    this.label = info.label;
    this.uuid = info.uuid;
    this.blockSize = info.blockSize;
    this.caseSensitive = info.type.startsWith('ext');
  }

  #listing(path: string, streams = false): Promise<Listing & { entry?: ListedEntry }> {
    return this.#api.request('GET', `${this.#base}/files?path=${encodeURIComponent(path)}${streams ? '&streams=true' : ''}`);
  }

  async stat(path: string): Promise<DirEntry> {
    const l = await this.#listing(path);
    const self = l.entry ?? (l.type === 'directory' ? undefined : l.entries[0]);
    if (!self) throw new SvError('SV_ERR_API_REMOTE', `the appliance at ${this.#api.url} did not describe ${path} itself (an older appliance?)`, { url: this.#api.url, path });
    const e = dirEntryOf(self);
    this.#seen.set(path, e);
    return e;
  }

  async list(path: string): Promise<DirEntry[]> {
    const l = await this.#listing(path);
    if (l.type !== 'directory') throw new SvError('SV_ERR_FS_NOT_A_DIRECTORY', `${path} is not a folder`, { path });
    const out = l.entries.map(dirEntryOf);
    for (const e of out) this.#seen.set(joinPath(path, e.name), e);
    return out;
  }

  async streams(path: string): Promise<StreamInfo[]> {
    const l = await this.#listing(path, true);
    return l.type === 'directory' ? [] : (l.entries[0]?.streams ?? []);
  }

  async open(path: string, stream?: string): Promise<FileHandle> {
    let size: number;
    if (stream !== undefined) {
      const s = (await this.streams(path)).find((x) => x.name === stream);
      if (!s) throw new SvError('SV_ERR_FS_NOT_FOUND', `${path} has no stream ${JSON.stringify(stream)}`, { path, stream });
      size = s.size;
    } else {
      const e = this.#seen.get(path) ?? (await this.stat(path));
      if (e.type === 'directory') throw new SvError('SV_ERR_FS_IS_A_DIRECTORY', `${path} is a folder`, { path });
      size = e.size;
    }
    const url = `${this.#base}/content?path=${encodeURIComponent(path)}${stream !== undefined ? `&stream=${encodeURIComponent(stream)}` : ''}`;
    const api = this.#api;
    return {
      size,
      async read(offset: number, length: number): Promise<Buffer> {
        const end = Math.min(size, offset + length);
        if (end <= offset) return Buffer.alloc(0);
        return fetchRange(api, url, offset, end);
      },
    };
  }
}
