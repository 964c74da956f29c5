/**
 * The fastify application of the appliance: error mapping, token auth with roles, body limits, strict JSON
 * schema validation (no type coercion, no silent removal of unknown fields), the routes and the OpenAPI
 * document. `buildApp` does not listen; serve.ts does, and tests use `inject`.
 */
import { readFileSync } from 'node:fs';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { Appliance } from '../appliance/appliance.js';
import { installAuth } from './auth.js';
import { installErrorHandling, serverErrorOptions } from './errors.js';
import { OpenApiCollector, installOpenApi } from './openapi.js';
import { NO_TLS, certFingerprint } from '../agent/channel/binding.js';
import { agentRoutes } from './routes/agents.js';
import { groupRoutes } from './routes/groups.js';
import { jobRoutes } from './routes/jobs.js';
import { pointRoutes } from './routes/points.js';
import { sourceRoutes } from './routes/sources.js';
import { systemRoutes } from './routes/system.js';
import { tokenRoutes } from './routes/tokens.js';
import { SHARED_SCHEMAS } from './schemas.js';

export function productVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export interface AppOptions {
  /** Logger for requests (default: the appliance's, at warn so job lines stay readable). */
  logger?: Logger;
  https?: { cert: Buffer; key: Buffer };
}

export async function buildApp(appliance: Appliance, opts: AppOptions = {}): Promise<FastifyInstance> {
  const version = productVersion();
  const base: FastifyServerOptions = {
    loggerInstance: opts.logger ?? appliance.log.child({ component: 'api' }, { level: 'warn' }),
    bodyLimit: appliance.config.limits.bodyLimit,
    return503OnClosing: true,
    ...serverErrorOptions,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
  };
  const app = (opts.https ? Fastify({ ...base, https: { cert: opts.https.cert, key: opts.https.key } } as FastifyServerOptions) : Fastify(base)) as unknown as FastifyInstance;
  const openapi = new OpenApiCollector(version);
  installOpenApi(app, openapi);
  installErrorHandling(app);
  // Bodies are JSON only: without this, fastify's built-in text/plain parser lets a text body through to
  // schema validation (400) instead of the documented 415 SV_ERR_API_UNSUPPORTED_MEDIA_TYPE.
  app.removeContentTypeParser('text/plain');
  installAuth(app, {
    tokens: appliance.tokens,
    maxFailures: appliance.config.limits.authFailures,
    windowMs: appliance.config.limits.authWindowMs,
    now: () => Date.now(),
    onFailure: () => appliance.metrics.authFailures.inc(),
  });
  for (const s of SHARED_SCHEMAS) app.addSchema(s);
  // the agents' control channel; frames over maxPayload close the connection (SV_ERR_AGENT_FRAME_TOO_LARGE)
  await app.register(websocket, { options: { maxPayload: appliance.agents.maxFrame, perMessageDeflate: false } });
  const tlsFingerprint = opts.https ? certFingerprint(opts.https.cert) : NO_TLS;
  const deps: RouteDeps = { appliance, openapi, version, tlsFingerprint };
  await app.register(systemRoutes, deps);
  await app.register(sourceRoutes, { ...deps, prefix: '/api/v1' });
  await app.register(groupRoutes, { ...deps, prefix: '/api/v1' });
  await app.register(jobRoutes, { ...deps, prefix: '/api/v1' });
  await app.register(pointRoutes, { ...deps, prefix: '/api/v1' });
  await app.register(tokenRoutes, { ...deps, prefix: '/api/v1' });
  await app.register(agentRoutes, { ...deps, prefix: '/api/v1' });
  await app.ready();
  return app;
}

export interface RouteDeps {
  appliance: Appliance;
  openapi: OpenApiCollector;
  version: string;
  /** SHA-256 fingerprint of the certificate served (NO_TLS: plain http); pairing binds to it. */
  tlsFingerprint: string;
}
