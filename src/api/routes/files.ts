/**
 * Item-level restore over the API, under /api/v1/sources/:id/points/:pointId/disks/:disk:
 *   GET  /volumes                          the disk's volumes and file systems            (viewer)
 *   GET  /volumes/:volume/files?path=P      a directory listing (or one file's entry)       (viewer)
 *   GET  /volumes/:volume/content?path=P    a file's bytes (&stream=NAME: an NTFS stream);  (operator)
 *                                           one Range honoured
 *   GET  /volumes/:volume/tar?path=P        a file or folder as a tar stream (pax/ustar)    (operator)
 *   POST /volumes/:volume/restore           {paths, target, overwrite?}: a restore job that (operator)
 *                                           writes the items into `target`, under a restore root
 * `:volume` is a partition index, or "auto" (the only or largest readable volume). Every request holds the point
 * (storage/holds.ts) while it reads; downloads until the response ends. Downloads count against the same kind
 * of limits as disk image downloads (--max-downloads, --max-downloads-per-token; a budget of their own).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { SvError } from '../../errors/index.js';
import { DownloadLimiter } from '../../appliance/downloads.js';
import { checkRestoreTarget } from '../../appliance/paths.js';
import { openBrowse, type BrowseSession } from '../../files/browse.js';
import { listPath, normalizePath } from '../../files/listing.js';
import { escapeName } from '../../files/names.js';
import { tarItems } from '../../files/tar.js';
import type { FileSystem } from '../../volumes/fs/types.js';
import type { RouteDeps } from '../app.js';
import { pointDiskIndex } from '../../appliance/point-disks.js';
import { parseRange } from '../range.js';
import { ERROR_REPLIES, imageParams } from '../schemas.js';

const volumeParams = {
  type: 'object',
  required: ['id', 'pointId', 'disk', 'volume'],
  additionalProperties: false,
  properties: { ...imageParams.properties, volume: { type: 'string', pattern: '^([0-9]{1,4}|auto)$' } },
} as const;
const volPath = { type: 'string', minLength: 1, maxLength: 32768 } as const;
const flag = { type: 'string', enum: ['true', 'false', '1', '0'] } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const binary = { type: 'string', format: 'binary' } as const;

interface VolParams { id: string; pointId: string; disk: string; volume: string }

export async function fileRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const tags = ['item-level restore'];
  const limits = appliance.config.limits;
  const downloads = new DownloadLimiter(limits.maxDownloads, limits.maxDownloadsPerToken);

  /** The session for a request: the source by id, the point among its points, the disk by name. */
  async function session(p: { id: string; pointId: string; disk: string }, operation: string): Promise<BrowseSession> {
    const source = appliance.protection.source(p.id);
    const points = await appliance.pointsOf(source);
    const point = points.find((x) => x.id === p.pointId && !x.damaged);
    if (!point) throw new SvError('SV_ERR_API_NOT_FOUND', `no recovery point ${p.pointId} of data source ${source.name}`, { sourceId: p.id, pointId: p.pointId });
    const disk = pointDiskIndex(source.name, point, p.disk);
    return openBrowse({ store: appliance.config.storeDir, source: source.name, point: point.id, disk, operation });
  }
  const volumeOf = (v: string): number | undefined => (v === 'auto' ? undefined : Number(v));

  /** Run `fn` with a session that is closed (the hold released) once the response has gone out or failed. */
  async function withSession<T>(p: { id: string; pointId: string; disk: string }, operation: string, fn: (s: BrowseSession) => Promise<T>): Promise<T> {
    const s = await session(p, operation);
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  }

  /** Send a stream; the session (and the download slot) are released when the response closes. */
  function stream(reply: FastifyReply, s: BrowseSession, release: () => void, body: Readable): FastifyReply {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      release();
      void s.close();
    };
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) body.destroy(new SvError('SV_ERR_CORE_CANCELLED', 'client went away', {}));
      finish();
    });
    body.once('error', finish);
    return reply.send(body);
  }

  /**
   * A download: `produce` returns the body (or undefined once it has sent an error reply itself) and calls `slot()`
   * when the transfer is sure to start; the session and the slot are held until the response closes, and released
   * at once on an error before the body.
   */
  async function download(req: FastifyRequest<{ Params: VolParams }>, reply: FastifyReply, operation: string,
    produce: (ctx: { s: BrowseSession; fs: FileSystem; slot: () => void }) => Promise<Readable | undefined>): Promise<FastifyReply> {
    const s = await session(req.params, operation);
    let release = (): void => undefined;
    try {
      const { fs } = await s.pick(volumeOf(req.params.volume));
      const body = await produce({ s, fs, slot: () => { release = downloads.acquire(req.token?.id ?? ''); } });
      if (!body) {
        release();
        await s.close();
        return reply;
      }
      return stream(reply, s, release, body);
    } catch (err) {
      release();
      await s.close();
      throw err;
    }
  }

  app.get<{ Params: { id: string; pointId: string; disk: string } }>('/sources/:id/points/:pointId/disks/:disk/volumes', {
    config: { role: 'viewer' },
    schema: { summary: 'Volumes (partitions) of a disk of a recovery point, with their file systems', tags, params: imageParams, response: { 200: anyObject, ...ERROR_REPLIES } },
  }, async (req) => withSession(req.params, 'api files volumes', async (s) => ({
    source: s.source, point: s.point, disk: s.disk, scheme: s.table.scheme, sectorSize: s.table.sectorSize, warnings: s.table.warnings, volumes: await s.volumes(),
  })));

  app.get<{ Params: VolParams; Querystring: { path?: string; streams?: string } }>('/sources/:id/points/:pointId/disks/:disk/volumes/:volume/files', {
    config: { role: 'viewer' },
    schema: {
      summary: 'List a directory of a volume (a file path lists that file); streams=true adds NTFS named streams',
      tags, params: volumeParams,
      querystring: { type: 'object', additionalProperties: false, properties: { path: volPath, streams: flag } },
      response: { 200: anyObject, ...ERROR_REPLIES },
    },
  }, async (req) => withSession(req.params, 'api files ls', async (s) => {
    const { volume, fs } = await s.pick(volumeOf(req.params.volume));
    const listing = await listPath(fs, req.query.path, req.query.streams === 'true' || req.query.streams === '1');
    return { source: s.source, point: s.point, disk: s.disk, volume: volume.index, fs: fs.type, ...listing };
  }));

  app.get<{ Params: VolParams; Querystring: { path: string; stream?: string } }>('/sources/:id/points/:pointId/disks/:disk/volumes/:volume/content', {
    config: { role: 'operator' },
    schema: {
      summary: 'Download one file of a volume (or a named stream); one Range honoured',
      tags, params: volumeParams,
      querystring: { type: 'object', required: ['path'], additionalProperties: false, properties: { path: volPath, stream: { type: 'string', minLength: 1, maxLength: 1024 } } },
      response: { 200: binary, 206: binary, 416: { $ref: 'Error#' }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => download(req, reply, 'api files download', async ({ fs, slot }) => {
    const path = normalizePath(req.query.path);
    const entry = await fs.stat(path);
    if (entry.type === 'directory') throw new SvError('SV_ERR_FS_IS_A_DIRECTORY', `${path} is a folder: download it with /tar`, { path });
    const handle = await fs.open(path, req.query.stream);
    const range = parseRange(req.headers.range, handle.size);
    if (range.kind === 'unsatisfiable') {
      const err = new SvError('SV_ERR_API_RANGE_NOT_SATISFIABLE', `range "${req.headers.range}" lies past the end of the ${handle.size}-byte file`, { range: req.headers.range, length: handle.size });
      void reply.status(416).header('content-range', `bytes */${handle.size}`).send(err.toWire());
      return undefined;
    }
    slot();
    const start = range.kind === 'range' ? range.start : 0;
    const end = range.kind === 'range' ? range.end + 1 : handle.size;
    async function* body(): AsyncGenerator<Buffer> {
      for (let at = start; at < end; at += 8 << 20) yield await handle.read(at, Math.min(8 << 20, end - at));
    }
    const name = escapeName(`${entry.name}${req.query.stream ? `:${req.query.stream}` : ''}`).name;
    void reply.header('content-type', 'application/octet-stream');
    void reply.header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(name)}`);
    void reply.header('accept-ranges', 'bytes');
    void reply.header('content-length', String(end - start));
    if (range.kind === 'range') void reply.status(206).header('content-range', `bytes ${range.start}-${range.end}/${handle.size}`);
    return Readable.from(body(), { objectMode: false });
  }));

  app.get<{ Params: VolParams; Querystring: { path: string } }>('/sources/:id/points/:pointId/disks/:disk/volumes/:volume/tar', {
    config: { role: 'operator' },
    schema: {
      summary: 'Download a file or folder (recursively) of a volume as a tar stream (escaped names, pax headers)',
      tags, params: volumeParams,
      querystring: { type: 'object', required: ['path'], additionalProperties: false, properties: { path: volPath } },
      response: { 200: binary, ...ERROR_REPLIES },
    },
  }, async (req, reply) => download(req, reply, 'api files tar', async ({ s, fs, slot }) => {
    const path = normalizePath(req.query.path);
    const entry = await fs.stat(path); // a missing path is a 404 before any byte is sent
    slot();
    const name = path === '/' ? `${s.source}-volume` : escapeName(entry.name).name;
    void reply.header('content-type', 'application/x-tar');
    void reply.header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(`${name}.tar`)}`);
    return Readable.from(tarItems(fs, [path]), { objectMode: false });
  }));

  app.post<{ Params: VolParams; Body: { paths: string[]; target: string; overwrite?: boolean } }>('/sources/:id/points/:pointId/disks/:disk/volumes/:volume/restore', {
    config: { role: 'operator' },
    schema: {
      summary: 'Restore files and folders of a volume into a folder under an allowed restore root; returns the restore job',
      tags, params: volumeParams,
      body: {
        type: 'object', required: ['paths', 'target'], additionalProperties: false,
        properties: { paths: { type: 'array', minItems: 1, maxItems: 1000, items: volPath }, target: { type: 'string', minLength: 1, maxLength: 4096 }, overwrite: { type: 'boolean' } },
      },
      response: { 202: { $ref: 'Job#' }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const target = checkRestoreTarget(req.body.target, appliance.config.restoreRoots);
    // Resolve the point, disk and volume now, so a bad request fails here rather than as a job.
    const s = await session(req.params, 'api files restore (check)');
    let volume: number;
    try {
      volume = (await s.pick(volumeOf(req.params.volume))).volume.index;
      for (const p of req.body.paths) await (await s.pick(volume)).fs.stat(normalizePath(p));
    } finally {
      await s.close();
    }
    const source = appliance.protection.source(req.params.id);
    const pending = appliance.queue.pending('restore', source.id);
    if (pending) throw new SvError('SV_ERR_JOB_SOURCE_BUSY', `a restore (${pending.id}) is already ${pending.state} for ${source.name}`, { jobId: pending.id });
    const job = await appliance.queue.enqueue({
      kind: 'restore', trigger: 'api', sourceId: source.id,
      params: { pointId: req.params.pointId, disk: req.params.disk, target, items: req.body.paths.map(normalizePath), volume, ...(req.body.overwrite ? { overwrite: true } : {}) },
    });
    return reply.status(202).send(job);
  });
}
