/** /healthz, /metrics, the OpenAPI document and the appliance status. */
import type { FastifyInstance } from 'fastify';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES } from '../schemas.js';

export async function systemRoutes(app: FastifyInstance, { appliance, openapi, version }: RouteDeps): Promise<void> {
  const started = Date.now();
  app.get('/healthz', {
    config: { role: 'public' },
    schema: {
      summary: 'Liveness: 200 while the appliance serves',
      tags: ['system'],
      response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string' }, version: { type: 'string' }, uptimeSeconds: { type: 'number' } } } },
    },
  }, async () => ({ status: 'ok', version, uptimeSeconds: Math.round((Date.now() - started) / 1000) }));

  app.get('/metrics', {
    config: { role: 'viewer' },
    schema: { summary: 'Prometheus metrics (text exposition format)', tags: ['system'], response: { 200: { type: 'string' }, 401: ERROR_REPLIES[401], 403: ERROR_REPLIES[403] } },
  }, async (_req, reply) => {
    const text = await appliance.metrics.text();
    return reply.header('content-type', appliance.metrics.contentType).serializer((x: unknown) => String(x)).send(text);
  });

  app.get('/api/v1/openapi.json', {
    config: { role: 'public' },
    schema: { summary: 'This API\'s OpenAPI 3.1 document', tags: ['system'] },
  }, async () => openapi.document());

  app.get('/api/v1/status', {
    config: { role: 'viewer' },
    schema: {
      summary: 'Appliance status: version, store, engine, job counts',
      tags: ['system'],
      response: {
        200: {
          type: 'object',
          properties: {
            version: { type: 'string' },
            store: { type: 'string' },
            engine: { type: 'boolean' },
            jobs: { type: 'object', additionalProperties: { type: 'integer' } },
            sources: { type: 'integer' },
            groups: { type: 'integer' },
          },
        },
        ...ERROR_REPLIES,
      },
    },
  }, async () => ({
    version,
    store: appliance.config.storeDir,
    engine: appliance.engine.available,
    jobs: appliance.queue.counts(),
    sources: appliance.db.sources.value.length,
    groups: appliance.db.groups.value.length,
  }));
}
