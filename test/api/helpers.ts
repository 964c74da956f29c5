/**
 * Test helpers for the API: an appliance in a temporary data folder, its fastify app (inject only), and a
 * token of each role. Pass `engine` to run real jobs. Source roots: `<dir>/sources` and /srv (made-up paths).
 */
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Appliance, type ApplianceDeps } from '../../src/appliance/appliance.js';
import { makeConfig, type Limits } from '../../src/appliance/config.js';
import type { Role } from '../../src/appliance/model.js';
import { buildApp } from '../../src/api/app.js';
import { tempDir } from '../helpers/env.js';

export interface TestAppliance {
  dir: string;
  appliance: Appliance;
  app: FastifyInstance;
  tokens: Record<Role, string>;
  /** inject with the given role's token (or `null` for none, or a literal token string). */
  call(role: Role | null | { token: string }, method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT', url: string, body?: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
}

interface T {
  teardown(fn: () => void | Promise<void>): void;
}

export async function startTestAppliance(t: T, opts: { deps?: ApplianceDeps; limits?: Partial<Limits>; start?: boolean; dir?: string; gcAt?: string[]; verifyAt?: string[]; sourceRoots?: string[]; name?: string; tls?: { certFile: string; keyFile: string } } = {}): Promise<TestAppliance> {
  const dir = opts.dir ?? tempDir(t, 'sv-api-');
  const config = makeConfig({ dataDir: dir, ...(opts.name ? { name: opts.name } : {}), restoreRoots: [join(dir, 'restores')], sourceRoots: opts.sourceRoots ?? [join(dir, 'sources'), SRV], limits: opts.limits, gcAt: opts.gcAt ?? ['never'], verifyAt: opts.verifyAt ?? ['never'], ...(opts.tls ? { tlsCert: opts.tls.certFile, tlsKey: opts.tls.keyFile } : {}) }, {});
  const appliance = await Appliance.open(config, { logger: pino({ level: 'silent' }), schedulerIntervalMs: 0, ...opts.deps });
  const app = await buildApp(appliance, { logger: pino({ level: 'silent' }) });
  if (opts.start !== false) appliance.start();
  let closed = false;
  t.teardown(async () => {
    if (closed) return;
    closed = true;
    await app.close();
    await appliance.stop();
  });
  const tokens = {
    admin: (await appliance.tokens.create('t-admin', 'admin')).token,
    operator: (await appliance.tokens.create('t-operator', 'operator')).token,
    viewer: (await appliance.tokens.create('t-viewer', 'viewer')).token,
    // an agent credential bound to an agent id no agent record has (pairing makes real ones)
    agent: (await appliance.tokens.create('t-agent', 'agent', undefined, 'no-such-agent')).token,
  };
  return {
    dir,
    appliance,
    app,
    tokens,
    call(role, method, url, body, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (role !== null) h.authorization = `Bearer ${typeof role === 'string' ? tokens[role] : role.token}`;
      if (body !== undefined && typeof body !== 'string' && !h['content-type']) h['content-type'] = 'application/json';
      return app.inject({ method, url, headers: h, payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    },
  };
}

/** A source root tests that never read their disks use for made-up paths (`/srv/...`). */
export const SRV = '/srv';

export const GROUP = {
  name: 'gold',
  syncFrequencyMinutes: 15,
  recoveryPointTimes: ['08:00', '20:00'],
  retention: { days: 7, maxCount: 10 },
};
