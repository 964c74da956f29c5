/**
 * /api/v1/exports: instant recovery through the appliance. Start serving a recovery point's disk over NBD
 * (src/export/exporter.ts: the point is held while served; writable exports put a scratch overlay in front),
 * list the exports, stop one (discarding its overlay, or `keep=true` saving it as a new point). Exports
 * listen on 127.0.0.1 (the appliance host's loopback; reach them through an SSH tunnel or a local hypervisor),
 * on the port asked for or a free one. `tls: true` requires TLS (NBD STARTTLS, URI nbds://) with the
 * appliance's own certificate and key (`serve --tls-cert/--tls-key`, read again at each start), so clients
 * trust the same CA as for the API; without them it is refused (SV_ERR_NBD_BAD_EXPORT_OPTIONS). All routes need operator. The appliance closing stops every export
 * (overlays discarded).
 */
import type { FastifyInstance } from 'fastify';
import { SvError } from '../../errors/index.js';
import { RecoveryExport } from '../../export/exporter.js';
import { readTlsPair } from '../../nbd/tls-files.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, pointParams } from '../schemas.js';

const exportInfo = {
  type: 'object',
  additionalProperties: true,
  required: ['id', 'name', 'source', 'point', 'disk', 'writable', 'uri'],
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, source: { type: 'string' }, point: { type: 'string' }, disk: { type: 'integer' },
    virtualSize: { type: 'integer' }, writable: { type: 'boolean' }, uri: { type: 'string' }, tls: { type: 'boolean' }, startedAt: { type: 'string' },
    connections: { type: 'integer' }, blocksWritten: { type: 'integer' },
  },
} as const;
const startBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    disk: { type: 'integer', minimum: 0, maximum: 1024 },
    writable: { type: 'boolean' },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    tls: { type: 'boolean' },
  },
} as const;
const exportParams = { type: 'object', required: ['exportId'], additionalProperties: false, properties: { exportId: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' } } } as const;
const stopQuery = { type: 'object', additionalProperties: false, properties: { keep: { type: 'string', enum: ['true', 'false'] } } } as const;

export async function exportRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const tags = ['instant recovery'];
  const exports = new Map<string, RecoveryExport>();
  app.addHook('onClose', async () => {
    await Promise.allSettled([...exports.values()].map((e) => e.stop()));
    exports.clear();
  });
  const find = (id: string): RecoveryExport => {
    const e = exports.get(id);
    if (!e) throw new SvError('SV_ERR_NBD_EXPORT_NOT_FOUND', `no export ${id} (running: ${[...exports.keys()].join(', ') || 'none'})`, { exportId: id });
    return e;
  };

  app.post<{ Params: { id: string; pointId: string }; Body: { disk?: number; writable?: boolean; port?: number; tls?: boolean } }>('/sources/:id/points/:pointId/exports', {
    config: { role: 'operator' },
    schema: { summary: 'Serve one disk of a recovery point over NBD on the appliance\'s loopback (instant recovery)', tags, params: pointParams, body: startBody, response: { 201: exportInfo, ...ERROR_REPLIES } },
  }, async (req, reply) => {
    const source = appliance.protection.source(req.params.id);
    const certs = appliance.config.tls;
    if (req.body.tls && !certs) throw new SvError('SV_ERR_NBD_BAD_EXPORT_OPTIONS', 'tls: true uses the appliance\'s own certificate, and this appliance serves without one (serve --tls-cert/--tls-key)', {});
    const tls = req.body.tls && certs ? await readTlsPair(certs.certFile, certs.keyFile) : undefined;
    const ex = await RecoveryExport.start({
      store: appliance.config.storeDir, source: source.name, point: req.params.pointId, disk: req.body.disk, writable: req.body.writable === true,
      listen: { host: '127.0.0.1', port: req.body.port ?? 0 }, ...(tls ? { tls } : {}),
    });
    exports.set(ex.id, ex);
    return reply.status(201).send(ex.info);
  });

  app.get('/exports', { config: { role: 'operator' }, schema: { summary: 'Exports being served', tags, response: { 200: { type: 'array', items: exportInfo }, ...ERROR_REPLIES } } }, async () => [...exports.values()].map((e) => e.info));

  app.get<{ Params: { exportId: string } }>('/exports/:exportId', { config: { role: 'operator' }, schema: { summary: 'One export', tags, params: exportParams, response: { 200: exportInfo, ...ERROR_REPLIES } } }, async (req) => find(req.params.exportId).info);

  app.delete<{ Params: { exportId: string }; Querystring: { keep?: 'true' | 'false' } }>('/exports/:exportId', {
    config: { role: 'operator' },
    schema: {
      summary: 'Stop an export: its overlay is discarded, or with keep=true saved as a new recovery point (madeFrom.instantRecovery)',
      tags, params: exportParams, querystring: stopQuery,
      response: { 200: { type: 'object', additionalProperties: true, required: ['export'], properties: { export: exportInfo, kept: { type: 'object', additionalProperties: true } } }, ...ERROR_REPLIES },
    },
  }, async (req) => {
    const ex = find(req.params.exportId);
    const keep = req.query.keep === 'true';
    if (keep && !ex.info.writable) throw new SvError('SV_ERR_NBD_BAD_EXPORT_OPTIONS', `export ${ex.name} is read-only: there is nothing to keep`, { export: ex.name });
    try {
      return await ex.stop({ keep });
    } finally {
      exports.delete(ex.id); // stopped either way (a failed keep has discarded the overlay)
    }
  });
}
