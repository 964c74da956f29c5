/**
 * The store commands (backup, check, points, restore) against a running appliance (`--url`): what they need
 * beyond remote.ts's JSON client.
 *
 * - The appliance's recovery points (GET /api/v1/sources/{id}/points) carry the engine's point summary in
 *   `details`: that is what `points --json` prints, so local and remote listings have the same shape.
 * - A point reference is resolved like the local store does: "latest"/none = newest, an id, or a unique id
 *   prefix. A disk is an index in the point (as locally) or the appliance's disk name.
 * - Downloads (GET .../disks/{disk}/image?format=) stream into a temporary file next to the output, which is
 *   renamed over it only once complete (an existing output is refused unless force).
 * - Restore jobs started by POST .../restore are awaited by polling GET /api/v1/jobs/{id}.
 */
import { createWriteStream } from 'node:fs';
import { lstat, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Job } from '../appliance/model.js';
import { SvError, fromWire, wrapSystemError, type WireError } from '../errors/index.js';
import type { PointSummary } from '../sync/index.js';
import type { RemoteClient } from './remote.js';

/** A recovery point as the appliance lists it. */
export interface RemotePoint {
  id: string;
  sourceId: string;
  time: string;
  tag: string;
  disks: { name: string; file?: string; virtualSize?: number }[];
  details?: Record<string, unknown>;
}

/** The appliance's data sources (id and name). */
export async function remoteSources(api: RemoteClient): Promise<{ id: string; name: string }[]> {
  return api.request<{ id: string; name: string }[]>('GET', 'api/v1/sources');
}

export async function remotePoints(api: RemoteClient, sourceId: string): Promise<RemotePoint[]> {
  return api.request<RemotePoint[]>('GET', `api/v1/sources/${encodeURIComponent(sourceId)}/points`);
}

/** The engine's summary of an appliance point (the local `points --json` element). */
export function summaryOf(p: RemotePoint, sourceName: string): PointSummary {
  if (p.details && typeof p.details.id === 'string' && typeof p.details.source === 'string') return p.details as unknown as PointSummary;
  // An engine without details: the fields the appliance knows.
  const disks = p.disks.map((d, index) => ({ index, name: d.file ?? d.name, format: 'raw', virtualSize: d.virtualSize ?? 0 }));
  return { id: p.id, source: sourceName, time: p.time, kind: p.tag, consistency: 'unknown', disks, bytesChanged: 0, bytesStored: 0 } as unknown as PointSummary;
}

/** "latest"/undefined, an id or a unique id prefix → the point (SV_ERR_STORE_POINT_NOT_FOUND otherwise). */
export function resolveRemotePoint(points: readonly RemotePoint[], source: string, ref: string | undefined): RemotePoint {
  if (!points.length) throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `data source "${source}" has no recovery points on the appliance`, { source });
  if (ref === undefined || ref === '' || ref === 'latest') return points[points.length - 1]!;
  const exact = points.find((p) => p.id === ref);
  if (exact) return exact;
  const matches = points.filter((p) => p.id.startsWith(ref));
  if (matches.length === 1) return matches[0]!;
  const why = matches.length ? `${matches.length} points start with "${ref}"` : `no point "${ref}"`;
  throw new SvError('SV_ERR_STORE_POINT_NOT_FOUND', `data source "${source}" on the appliance: ${why}`, { source, point: ref });
}

/** `--disk` (an index in the point, or the appliance's disk name) → the disk's index and name. */
export function remoteDisk(point: RemotePoint, disk: string | undefined): { index: number; name: string } {
  const ref = disk ?? '0';
  const byName = point.disks.findIndex((d) => d.name === ref);
  const index = byName >= 0 ? byName : /^\d+$/.test(ref) ? Number(ref) : -1;
  const d = point.disks[index];
  if (!d) {
    throw new SvError('SV_ERR_SYNC_DISK_NOT_FOUND', `recovery point ${point.id} has no disk "${ref}" (it has ${point.disks.map((x, i) => `${i}=${x.name}`).join(', ')})`, { point: point.id, disk: ref, disks: point.disks.map((x) => x.name) });
  }
  return { index, name: d.name };
}

/** An authenticated GET whose body is streamed (errors come back as the catalogued SvError). */
async function fetchStream(api: RemoteClient, path: string, signal?: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(new URL(path, api.url.endsWith('/') ? api.url : `${api.url}/`), { headers: { authorization: `Bearer ${api.token}` }, signal });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new SvError('SV_ERR_API_REMOTE', `cannot reach the appliance at ${api.url}: ${cause?.code ?? ''} ${cause?.message ?? (err as Error).message}`.trim(), { url: api.url }, { cause: err });
  }
  if (!res.ok || !res.body) {
    const text = await res.text();
    let w: Partial<WireError> | undefined;
    try {
      w = JSON.parse(text) as Partial<WireError>;
    } catch {
      w = undefined;
    }
    if (w && typeof w.code === 'string' && typeof w.message === 'string') throw fromWire(w as WireError);
    throw new SvError('SV_ERR_API_REMOTE', `the appliance at ${api.url} answered ${res.status}: ${text.slice(0, 200)}`, { url: api.url, status: res.status });
  }
  return res;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw wrapSystemError(err, `stat ${path}`);
  }
}

/**
 * Download one disk of a point into `out` (temp file in the same folder, renamed when complete). Returns the
 * bytes written. Refuses an existing `out` unless force (SV_ERR_FORMAT_OUTPUT_EXISTS, as a local restore).
 */
export async function downloadImage(
  api: RemoteClient,
  req: { sourceId: string; pointId: string; disk: string; format: string; out: string; force: boolean },
  progress?: (done: number, total: number) => void,
): Promise<number> {
  if (!req.force && (await exists(req.out))) {
    throw new SvError('SV_ERR_FORMAT_OUTPUT_EXISTS', `output ${req.out} exists (pass --force to replace it)`, { path: req.out });
  }
  const path = `api/v1/sources/${encodeURIComponent(req.sourceId)}/points/${encodeURIComponent(req.pointId)}/disks/${encodeURIComponent(req.disk)}/image?format=${encodeURIComponent(req.format)}`;
  const res = await fetchStream(api, path);
  const total = Number(res.headers.get('content-length') ?? 0);
  const tmp = join(dirname(req.out), `.${basename(req.out)}.${process.pid}.part`);
  let done = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      progress?.(done, Math.max(total, done));
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), count, createWriteStream(tmp, { mode: 0o600 }));
    if (total && done !== total) {
      throw new SvError('SV_ERR_API_REMOTE', `download of ${req.out} from ${api.url} ended after ${done} of ${total} bytes`, { url: api.url, done, total });
    }
    if (!req.force && (await exists(req.out))) {
      throw new SvError('SV_ERR_FORMAT_OUTPUT_EXISTS', `output ${req.out} appeared during the download (pass --force to replace it)`, { path: req.out });
    }
    await rename(tmp, req.out);
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof SvError) throw err;
    throw wrapSystemError(err, `download to ${req.out}`);
  }
  return done;
}

/** Wait for an appliance job to end; resolves with it when it succeeded, rejects with its error otherwise. */
export async function waitRemoteJob(api: RemoteClient, first: Job, onProgress?: (done: number, total: number) => void, pollMs = 250): Promise<Job> {
  let job = first;
  while (job.state === 'queued' || job.state === 'running') {
    await new Promise((r) => setTimeout(r, pollMs));
    job = await api.request<Job>('GET', `api/v1/jobs/${encodeURIComponent(job.id)}`);
    onProgress?.(job.progress.bytesDone, job.progress.bytesTotal);
  }
  if (job.state !== 'succeeded') throw job.error ? fromWire(job.error) : new SvError('SV_ERR_API_REMOTE', `job ${job.id} ended ${job.state}`, { id: job.id });
  return job;
}

export { isRemote } from './remote-options.js';
