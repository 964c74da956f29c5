/** /api/v1/tokens: API tokens (admin only). The token text is returned once, at creation. */
import type { FastifyInstance } from 'fastify';
import { SvError } from '../../errors/index.js';
import type { Role } from '../../appliance/model.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, idParams, tokenBody } from '../schemas.js';

export async function tokenRoutes(app: FastifyInstance, { appliance }: RouteDeps): Promise<void> {
  const tags = ['tokens'];
  const view = (t: { id: string; name: string; role: Role; createdAt: string }) => ({ id: t.id, name: t.name, role: t.role, createdAt: t.createdAt });
  app.get('/tokens', { config: { role: 'admin' }, schema: { summary: 'List API tokens (never their text)', tags, response: { 200: { type: 'array', items: { $ref: 'Token#' } }, ...ERROR_REPLIES } } }, async () => appliance.tokens.list().map(view));
  app.post<{ Body: { name: string; role: Role } }>('/tokens', {
    config: { role: 'admin' },
    schema: {
      summary: 'Create an API token; the reply holds its text, shown only this once',
      tags,
      body: tokenBody,
      response: { 201: { type: 'object', required: ['id', 'token'], properties: { id: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, createdAt: { type: 'string' }, token: { type: 'string' } } }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const { record, token } = await appliance.tokens.create(req.body.name, req.body.role);
    return reply.status(201).send({ ...view(record), token });
  });
  app.delete<{ Params: { id: string } }>('/tokens/:id', { config: { role: 'admin' }, schema: { summary: 'Revoke an API token', tags, params: idParams, response: { 204: { type: 'null' }, ...ERROR_REPLIES } } }, async (req, reply) => {
    if (req.token?.id === req.params.id) throw new SvError('SV_ERR_API_CONFLICT', 'a token cannot revoke itself', { id: req.params.id });
    if (!(await appliance.tokens.remove(req.params.id))) throw new SvError('SV_ERR_API_NOT_FOUND', `no token ${req.params.id}`, { id: req.params.id });
    return reply.status(204).send();
  });
}
