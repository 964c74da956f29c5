/**
 * The OpenAPI 3.1 document of the admin API, built from the routes' own JSON schemas as fastify registers
 * them (an `onRoute` hook), and served at /api/v1/openapi.json.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import { SHARED_SCHEMAS } from './schemas.js';

type Json = Record<string, unknown>;

function fixRefs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fixRefs);
  if (v && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) {
      if (k === '$ref' && typeof x === 'string' && x.endsWith('#')) out[k] = `#/components/schemas/${x.slice(0, -1)}`;
      else if (k === '$id') continue;
      else out[k] = fixRefs(x);
    }
    return out;
  }
  return v;
}

function parametersOf(where: 'path' | 'query', schema: unknown): Json[] {
  const s = schema as { properties?: Record<string, unknown>; required?: string[] } | undefined;
  if (!s?.properties) return [];
  return Object.entries(s.properties).map(([name, sch]) => ({ name, in: where, required: where === 'path' || (s.required ?? []).includes(name), schema: fixRefs(sch) }));
}

export class OpenApiCollector {
  #paths: Record<string, Json> = {};

  constructor(readonly version: string) {}

  add(route: RouteOptions): void {
    if (!route.url.startsWith('/api/') && route.url !== '/healthz' && route.url !== '/metrics') return;
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== 'HEAD');
    const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const schema = (route.schema ?? {}) as { params?: unknown; querystring?: unknown; body?: unknown; response?: Record<string, unknown>; summary?: string; tags?: string[] };
    const role = (route.config as { role?: string } | undefined)?.role ?? 'admin';
    for (const m of methods) {
      const op: Json = {
        summary: schema.summary ?? `${m} ${path}`,
        tags: schema.tags ?? [],
        'x-shadowvault-role': role,
        parameters: [...parametersOf('path', schema.params), ...parametersOf('query', schema.querystring)],
        responses: Object.fromEntries(
          Object.entries(schema.response ?? { 200: {} }).map(([status, s]) => [status, { description: `status ${status}`, content: { 'application/json': { schema: fixRefs(s) } } }]),
        ),
      };
      if (role !== 'public') op.security = [{ bearer: [] }];
      if (schema.body) op.requestBody = { required: true, content: { 'application/json': { schema: fixRefs(schema.body) } } };
      this.#paths[path] = { ...(this.#paths[path] ?? {}), [m.toLowerCase()]: op };
    }
  }

  document(): Json {
    return {
      openapi: '3.1.0',
      info: { title: 'shadowvault appliance API', version: this.version, description: 'Admin API of the shadowvault backup appliance. Errors are {code, message, details}; see docs/ERRORS.md.' },
      servers: [{ url: '/' }],
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API token (svt_...); roles admin, operator, viewer' } },
        schemas: Object.fromEntries(SHARED_SCHEMAS.map((s) => [s.$id, fixRefs(s)])),
      },
      paths: this.#paths,
    };
  }
}

export function installOpenApi(app: FastifyInstance, collector: OpenApiCollector): void {
  app.addHook('onRoute', (route) => collector.add(route));
}

declare module 'fastify' {
  interface FastifySchema {
    /** One line for the OpenAPI document. */
    summary?: string;
    tags?: string[];
  }
}
