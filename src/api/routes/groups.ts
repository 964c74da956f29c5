/** /api/v1/groups: protection groups (members, schedule, retention, disks). Reading needs viewer, changing admin. */
import type { FastifyInstance } from 'fastify';
import type { GroupInput } from '../../appliance/protection.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, groupBody, groupPatch, idParams } from '../schemas.js';

const one = { $ref: 'ProtectionGroup#' } as const;

export async function groupRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const p = appliance.protection;
  const tags = ['groups'];
  app.get('/groups', { config: { role: 'viewer' }, schema: { summary: 'List protection groups', tags, response: { 200: { type: 'array', items: one }, ...ERROR_REPLIES } } }, async () => p.groups());
  app.get<{ Params: { id: string } }>('/groups/:id', { config: { role: 'viewer' }, schema: { summary: 'One protection group', tags, params: idParams, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => p.group(req.params.id));
  app.post<{ Body: GroupInput }>('/groups', { config: { role: 'admin' }, schema: { summary: 'Create a protection group', tags, body: groupBody, response: { 201: one, ...ERROR_REPLIES } } }, async (req, reply) => {
    const g = await p.createGroup(req.body);
    return reply.status(201).send(g);
  });
  app.patch<{ Params: { id: string }; Body: GroupInput }>('/groups/:id', { config: { role: 'admin' }, schema: { summary: 'Change a protection group', tags, params: idParams, body: groupPatch, response: { 200: one, ...ERROR_REPLIES } } }, async (req) => p.updateGroup(req.params.id, req.body));
  app.delete<{ Params: { id: string } }>('/groups/:id', { config: { role: 'admin' }, schema: { summary: 'Remove a protection group (its sources and points stay)', tags, params: idParams, response: { 204: { type: 'null' }, ...ERROR_REPLIES } } }, async (req, reply) => {
    await p.deleteGroup(req.params.id);
    return reply.status(204).send();
  });
}
