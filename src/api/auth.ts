/**
 * Authentication and roles. Every route declares the least role it needs in `config.role` ('public' for
 * /healthz and the OpenAPI document); a route that declares nothing needs admin. Tokens come in
 * `Authorization: Bearer svt_...`. Failed authentications are counted per client address; past the limit
 * within the window the address's FAILED attempts get 429 (SV_ERR_API_RATE_LIMITED) instead of 401, and
 * stop being counted. A request with a valid token always passes: bogus requests from one local process
 * must not lock out Prometheus or the CLI on 127.0.0.1. Guessing stays hopeless (a token carries 256 random
 * bits); the limit bounds what failures cost (log lines, metrics), and tells a misconfigured client to stop.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SvError } from '../errors/index.js';
import type { Role, TokenRecord } from '../appliance/model.js';
import type { TokenStore } from '../appliance/tokens.js';

export type RouteRole = Role | 'public';

/** viewer < operator < admin. `agent` is outside the rank: agent routes take agent credentials only, and agent credentials nothing else. */
const RANK: Record<Exclude<Role, 'agent'>, number> = { viewer: 1, operator: 2, admin: 3 };

function allowed(role: Role, need: Role): boolean {
  if (role === 'agent' || need === 'agent') return role === need;
  return RANK[role] >= RANK[need];
}

declare module 'fastify' {
  interface FastifyContextConfig {
    role?: RouteRole;
  }
  interface FastifyRequest {
    token?: TokenRecord;
  }
}

export interface AuthOptions {
  tokens: TokenStore;
  maxFailures: number;
  windowMs: number;
  now: () => number;
  onFailure?: () => void;
}

class FailureLimiter {
  #hits = new Map<string, { count: number; resetAt: number }>();
  constructor(readonly max: number, readonly windowMs: number) {}

  blockedFor(ip: string, now: number): number {
    const h = this.#hits.get(ip);
    if (!h || h.resetAt <= now) return 0;
    return h.count >= this.max ? Math.ceil((h.resetAt - now) / 1000) : 0;
  }

  fail(ip: string, now: number): void {
    const h = this.#hits.get(ip);
    if (!h || h.resetAt <= now) {
      if (this.#hits.size > 10_000) for (const [k, v] of this.#hits) if (v.resetAt <= now) this.#hits.delete(k);
      this.#hits.set(ip, { count: 1, resetAt: now + this.windowMs });
    } else {
      h.count += 1;
    }
  }
}

function bearer(request: FastifyRequest): string | undefined {
  const h = request.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

export function installAuth(app: FastifyInstance, opts: AuthOptions): void {
  const limiter = new FailureLimiter(opts.maxFailures, opts.windowMs);
  app.decorateRequest('token', undefined);
  app.addHook('onRequest', async (request) => {
    const need: RouteRole = request.routeOptions.config.role ?? 'admin';
    if (need === 'public' || request.routeOptions.url === undefined) return;
    const presented = bearer(request);
    const record = presented === undefined ? undefined : opts.tokens.lookup(presented);
    if (!record) {
      const now = opts.now();
      const wait = limiter.blockedFor(request.ip, now);
      if (wait > 0) {
        throw new SvError('SV_ERR_API_RATE_LIMITED', `too many failed authentications from ${request.ip}; retry in ${wait} s`, { retryAfterSeconds: wait });
      }
      limiter.fail(request.ip, now);
      opts.onFailure?.();
      throw new SvError(
        'SV_ERR_API_UNAUTHENTICATED',
        presented === undefined ? 'missing API token: send "Authorization: Bearer <token>"' : 'unknown API token',
        {},
      );
    }
    if (!allowed(record.role, need)) {
      throw new SvError('SV_ERR_API_FORBIDDEN', `role ${record.role} may not ${request.method} ${request.routeOptions.url}; it needs ${need}`, { role: record.role, needs: need });
    }
    request.token = record;
  });
}
