/**
 * /api/v1/sources/:id/points: recovery points of a data source: list, inspect, restore (a job), download a
 * disk image (streamed from the store, no temporary file; one Range honoured; at most --max-downloads at once,
 * --max-downloads-per-token per token: src/appliance/downloads.ts). Reading needs viewer; restoring and
 * downloading data need operator.
 */
import type { FastifyInstance } from 'fastify';
import { pipeline, Transform } from 'node:stream';
import { CompressStream } from 'zstd-napi';
import { SvError } from '../../errors/index.js';
import type { ImageFormat } from '../../appliance/engine/index.js';
import { DownloadLimiter } from '../../appliance/downloads.js';
import { checkRestoreTarget } from '../../appliance/paths.js';
import type { RouteDeps } from '../app.js';
import { pointDiskIndex } from '../../appliance/point-disks.js';
import { parseRange } from '../range.js';
import { ERROR_REPLIES, idParams, imageParams, imageQuery, pointParams, restoreBody } from '../schemas.js';

const one = { $ref: 'RecoveryPoint#' } as const;
const binary = { type: 'string', format: 'binary' } as const;

export async function pointRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const tags = ['recovery points'];
  const limits = appliance.config.limits;
  const downloads = new DownloadLimiter(limits.maxDownloads, limits.maxDownloadsPerToken);
  const listOf = async (sourceId: string) => {
    const source = appliance.protection.source(sourceId);
    const pts = await appliance.pointsOf(source);
    return {
      source,
      points: pts.map((p) => ({
        id: p.id, sourceId: source.id, time: p.time, tag: p.tag, consistency: p.consistency, reasons: p.reasons, pauseMs: p.pauseMs, freezeMs: p.freezeMs, bytesSent: p.bytesSent,
        disks: p.disks, ...(p.raw.configuration ? { configuration: p.raw.configuration } : {}), details: p.raw, ...(p.damaged ? { damaged: p.damaged } : {}),
      })),
    };
  };
  const pointOf = async (sourceId: string, pointId: string) => {
    const { source, points } = await listOf(sourceId);
    const point = points.find((p) => p.id === pointId);
    if (!point) throw new SvError('SV_ERR_API_NOT_FOUND', `no recovery point ${pointId} of data source ${source.name}`, { sourceId, pointId });
    return { source, point };
  };

  app.get<{ Params: { id: string } }>('/sources/:id/points', { config: { role: 'viewer' }, schema: { summary: 'Recovery points of a data source, oldest first', tags, params: idParams, response: { 200: { type: 'array', items: one }, ...ERROR_REPLIES } } }, async (req) => (await listOf(req.params.id)).points);

  app.get<{ Params: { id: string; pointId: string } }>('/sources/:id/points/:pointId', { config: { role: 'viewer' }, schema: { summary: 'One recovery point', tags, params: pointParams, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => (await pointOf(req.params.id, req.params.pointId)).point);

  app.post<{ Params: { id: string; pointId: string }; Body: { disk?: string; target?: string; toHost?: boolean; import?: boolean; format: ImageFormat } }>('/sources/:id/points/:pointId/restore', {
    config: { role: 'operator' },
    schema: {
      summary: 'Restore one disk (to a file) or the whole VM (into a folder) under an allowed restore root; returns the restore job',
      tags,
      params: pointParams,
      body: restoreBody,
      response: { 202: { $ref: 'Job#' }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    if (req.body.toHost && req.body.target !== undefined) throw new SvError('SV_ERR_API_VALIDATION', 'give either "target" (restore on the appliance) or "toHost" (back to the VM\'s host), not both', {});
    const target = req.body.toHost ? undefined : checkRestoreTarget(req.body.target ?? '', appliance.config.restoreRoots);
    const { source, point } = await pointOf(req.params.id, req.params.pointId);
    if (req.body.toHost && !source.vm) throw new SvError('SV_ERR_API_VALIDATION', `data source ${source.name} is not a VM source: restore it to a target path instead`, { source: source.name });
    if (req.body.import && (!req.body.toHost || req.body.disk !== undefined)) throw new SvError('SV_ERR_API_VALIDATION', '"import" goes with "toHost" and no "disk" (the whole VM is imported)', {});
    if (req.body.import) {
      const pending = appliance.queue.pending('restore', source.id);
      if (pending) throw new SvError('SV_ERR_JOB_SOURCE_BUSY', `a restore (${pending.id}) is already ${pending.state} for ${source.name}`, { jobId: pending.id });
      return reply.status(202).send(await appliance.queue.enqueue({ kind: 'restore', trigger: 'api', sourceId: source.id, params: { pointId: point.id, toHost: true, import: true } }));
    }
    if (req.body.toHost && req.body.disk === undefined && point.disks.length !== 1) throw new SvError('SV_ERR_API_VALIDATION', `restore to the host writes one disk: name it ("disk": one of ${point.disks.map((d) => d.name).join(', ')})`, {});
    if (req.body.disk !== undefined) pointDiskIndex(source.name, point, req.body.disk);
    const pending = appliance.queue.pending('restore', source.id);
    if (pending) throw new SvError('SV_ERR_JOB_SOURCE_BUSY', `a restore (${pending.id}) is already ${pending.state} for ${source.name}`, { jobId: pending.id });
    const job = await appliance.queue.enqueue({ kind: 'restore', trigger: 'api', sourceId: source.id, params: req.body.toHost ? { pointId: point.id, disk: req.body.disk ?? point.disks[0]!.name, toHost: true } : { pointId: point.id, disk: req.body.disk, target, format: req.body.format } });
    return reply.status(202).send(job);
  });

  app.get<{ Params: { id: string; pointId: string; disk: string }; Querystring: { format?: ImageFormat; compression?: 'none' | 'zstd' } }>('/sources/:id/points/:pointId/disks/:disk/image', {
    config: { role: 'operator' },
    schema: {
      summary: 'Download one disk of a recovery point as an image (raw, vhd or vhdx), streamed from the store; Range honoured (one range); compression=zstd sends one zstd stream',
      tags,
      params: imageParams,
      querystring: imageQuery,
      response: { 200: binary, 206: binary, 416: { $ref: 'Error#' }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const { source, point } = await pointOf(req.params.id, req.params.pointId);
    const index = pointDiskIndex(source.name, point, req.params.disk);
    const disk = point.disks[index]!;
    const format = req.query.format ?? 'raw';
    const zstd = req.query.compression === 'zstd';
    // The slot is held until the response closes, whatever ends it; a client gone stops the reads.
    const release = downloads.acquire(req.token?.id ?? '');
    const abort = new AbortController();
    reply.raw.once('close', () => {
      release();
      if (!reply.raw.writableFinished) abort.abort(new SvError('SV_ERR_CORE_CANCELLED', 'client went away', {}));
    });
    const image = await appliance.engine.exportImage({ source: source.name, pointId: point.id, disk: index, format }, abort.signal);
    if (abort.signal.aborted) {
      image.close(); // the client left while the layout was computed: read nothing
      throw abort.signal.reason;
    }
    const range = zstd ? { kind: 'none' as const } : parseRange(req.headers.range, image.length);
    if (range.kind === 'unsatisfiable') {
      image.close();
      const err = new SvError('SV_ERR_API_RANGE_NOT_SATISFIABLE', `range "${req.headers.range}" lies past the end of the ${image.length}-byte image`, { range: req.headers.range, length: image.length });
      return reply.status(416).header('content-range', `bytes */${image.length}`).send(err.toWire());
    }
    const t0 = Date.now();
    let bytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(null, chunk);
      },
      flush(cb) {
        appliance.metrics.restoreBytes.inc(bytes);
        appliance.metrics.restoreThroughput.set(bytes / Math.max((Date.now() - t0) / 1000, 1e-3));
        cb();
      },
    });
    const filename = `${source.name.replace(/[^A-Za-z0-9._-]/g, '_')}-${disk.name}.${format === 'raw' ? 'img' : format}`;
    // An engine error destroys the response stream, so the client sees a cut download.
    if (zstd) {
      // The JavaScript side's zstd (zstd-napi) for streams; level 3 keeps up with the engine on one core.
      void reply.header('content-type', 'application/zstd');
      void reply.header('content-disposition', `attachment; filename="${filename}.zst"`);
      void reply.header('x-uncompressed-length', String(image.length));
      void reply.header('accept-ranges', 'none');
      const compress = new CompressStream({ compressionLevel: 3 });
      pipeline(image.stream(), counted, compress, () => {});
      return reply.send(compress);
    }
    void reply.header('content-type', 'application/octet-stream');
    void reply.header('content-disposition', `attachment; filename="${filename}"`);
    void reply.header('accept-ranges', 'bytes');
    if (range.kind === 'range') {
      void reply.status(206).header('content-range', `bytes ${range.start}-${range.end}/${image.length}`);
      void reply.header('content-length', String(range.end - range.start + 1));
    } else {
      void reply.header('content-length', String(image.length));
    }
    pipeline(image.stream(range.kind === 'range' ? range : undefined), counted, () => {});
    return reply.send(counted);
  });
}
