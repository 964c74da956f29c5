/**
 * /api/v1/sources: data sources (a VM and its disk paths). Reading needs viewer, changing needs admin. Disk
 * paths must lie under the appliance's source roots (protection.ts; checked again when a job opens them).
 */
import type { FastifyInstance } from 'fastify';
import type { SourceInput } from '../../appliance/protection.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, idParams, sourceBody, sourcePatch } from '../schemas.js';

const one = { $ref: 'DataSource#' } as const;

export async function sourceRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const p = appliance.protection;
  const tags = ['sources'];
  app.get('/sources', { config: { role: 'viewer' }, schema: { summary: 'List data sources', tags, response: { 200: { type: 'array', items: one }, ...ERROR_REPLIES } } }, async () => p.sources());
  app.get<{ Params: { id: string } }>('/sources/:id', { config: { role: 'viewer' }, schema: { summary: 'One data source', tags, params: idParams, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => p.source(req.params.id));
  app.post<{ Body: SourceInput }>('/sources', { config: { role: 'admin' }, schema: { summary: 'Add a data source', tags, body: sourceBody, response: { 201: one, ...ERROR_REPLIES } } }, async (req, reply) => {
    const s = await p.createSource(req.body);
    return reply.status(201).send(s);
  });
  app.patch<{ Params: { id: string }; Body: SourceInput }>('/sources/:id', { config: { role: 'admin' }, schema: { summary: 'Change a data source\'s host or disks', tags, params: idParams, body: sourcePatch, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => p.updateSource(req.params.id, req.body));
  app.delete<{ Params: { id: string } }>('/sources/:id', { config: { role: 'admin' }, schema: { summary: 'Remove a data source (not a member of any group, no job pending); its recovery points stay in the store', tags, params: idParams, response: { 204: { type: 'null' }, ...ERROR_REPLIES } } }, async (req, reply) => {
    await p.deleteSource(req.params.id);
    return reply.status(204).send();
  });
}
