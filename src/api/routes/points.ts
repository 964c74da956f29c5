/**
 * /api/v1/sources/:id/points: recovery points of a data source: list, inspect, restore (a job), download a
 * disk image (streamed). Reading needs viewer; restoring and downloading data need operator.
 */
import type { FastifyInstance } from 'fastify';
import { pipeline } from 'node:stream';
import { CompressStream } from 'zstd-napi';
import { SvError } from '../../errors/index.js';
import type { ImageFormat } from '../../appliance/engine.js';
import { checkRestoreTarget } from '../../appliance/paths.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, idParams, imageParams, imageQuery, pointParams, restoreBody } from '../schemas.js';

const one = { $ref: 'RecoveryPoint#' } as const;

export async function pointRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const tags = ['recovery points'];
  const listOf = async (sourceId: string) => {
    const source = appliance.protection.source(sourceId);
    const pts = await appliance.pointsOf(source);
    return { source, points: pts.map((p) => ({ id: p.id, sourceId: source.id, time: p.time, tag: p.tag, disks: p.disks, details: p.raw, ...(p.damaged ? { damaged: p.damaged } : {}) })) };
  };
  const pointOf = async (sourceId: string, pointId: string) => {
    const { source, points } = await listOf(sourceId);
    const point = points.find((p) => p.id === pointId);
    if (!point) throw new SvError('SV_ERR_API_NOT_FOUND', `no recovery point ${pointId} of data source ${source.name}`, { sourceId, pointId });
    return { source, point };
  };

  app.get<{ Params: { id: string } }>('/sources/:id/points', { config: { role: 'viewer' }, schema: { summary: 'Recovery points of a data source, oldest first', tags, params: idParams, response: { 200: { type: 'array', items: one }, ...ERROR_REPLIES } } }, async (req) => (await listOf(req.params.id)).points);

  app.get<{ Params: { id: string; pointId: string } }>('/sources/:id/points/:pointId', { config: { role: 'viewer' }, schema: { summary: 'One recovery point', tags, params: pointParams, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => (await pointOf(req.params.id, req.params.pointId)).point);

  app.post<{ Params: { id: string; pointId: string }; Body: { disk?: string; target: string; format: ImageFormat } }>('/sources/:id/points/:pointId/restore', {
    config: { role: 'operator' },
    schema: {
      summary: 'Restore one disk (to a file) or the whole VM (into a folder) under an allowed restore root; returns the restore job',
      tags,
      params: pointParams,
      body: restoreBody,
      response: { 202: { $ref: 'Job#' }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const target = checkRestoreTarget(req.body.target, appliance.config.restoreRoots);
    const { source, point } = await pointOf(req.params.id, req.params.pointId);
    if (req.body.disk !== undefined && !point.disks.some((d) => d.name === req.body.disk)) {
      throw new SvError('SV_ERR_API_NOT_FOUND', `recovery point ${point.id} has no disk "${req.body.disk}" (it has ${point.disks.map((d) => d.name).join(', ')})`, { disk: req.body.disk });
    }
    const pending = appliance.queue.pending('restore', source.id);
    if (pending) throw new SvError('SV_ERR_JOB_SOURCE_BUSY', `a restore (${pending.id}) is already ${pending.state} for ${source.name}`, { jobId: pending.id });
    const job = await appliance.queue.enqueue({ kind: 'restore', trigger: 'api', sourceId: source.id, params: { pointId: point.id, disk: req.body.disk, target, format: req.body.format } });
    return reply.status(202).send(job);
  });

  app.get<{ Params: { id: string; pointId: string; disk: string }; Querystring: { format?: ImageFormat; compression?: 'none' | 'zstd' } }>('/sources/:id/points/:pointId/disks/:disk/image', {
    config: { role: 'operator' },
    schema: {
      summary: 'Download one disk of a recovery point as an image (raw, vhd or vhdx), streamed; compression=zstd sends one zstd stream',
      tags,
      params: imageParams,
      querystring: imageQuery,
      response: { 200: { type: 'string', format: 'binary' }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const { source, point } = await pointOf(req.params.id, req.params.pointId);
    const disk = point.disks.find((d) => d.name === req.params.disk);
    if (!disk) throw new SvError('SV_ERR_API_NOT_FOUND', `recovery point ${point.id} has no disk "${req.params.disk}"`, { disk: req.params.disk });
    const format = req.query.format ?? 'raw';
    const abort = new AbortController();
    req.raw.on('close', () => abort.abort(new SvError('SV_ERR_CORE_CANCELLED', 'client went away', {})));
    const index = appliance.diskIndex(source, point.id, disk.name);
    const { stream, length } = await appliance.engine.exportImage({ source: source.name, pointId: point.id, disk: index, format }, abort.signal);
    const t0 = Date.now();
    let bytes = 0;
    stream.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    stream.on('end', () => {
      appliance.metrics.restoreBytes.inc(bytes);
      appliance.metrics.restoreThroughput.set(bytes / Math.max((Date.now() - t0) / 1000, 1e-3));
    });
    const filename = `${source.name.replace(/[^A-Za-z0-9._-]/g, '_')}-${disk.name}.${format === 'raw' ? 'img' : format}`;
    if (req.query.compression === 'zstd') {
      // The JavaScript side's zstd (zstd-napi) for streams; level 3 keeps up with the engine on one core.
      void reply.header('content-type', 'application/zstd');
      void reply.header('content-disposition', `attachment; filename="${filename}.zst"`);
      if (length !== undefined) void reply.header('x-uncompressed-length', String(length));
      const zstd = new CompressStream({ compressionLevel: 3 });
      pipeline(stream, zstd, () => {}); // an engine error destroys the response stream, so the client sees a cut download
      return reply.send(zstd);
    }
    void reply.header('content-type', 'application/octet-stream');
    void reply.header('content-disposition', `attachment; filename="${filename}"`);
    if (length !== undefined) void reply.header('content-length', String(length));
    return reply.send(stream);
  });
}
