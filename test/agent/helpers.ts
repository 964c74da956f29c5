/**
 * Helpers for the agent tests: an in-process appliance listening on loopback (http, or https with a
 * self-signed certificate from openssl), a host agent in this process, and a hypervisor driver that reports a
 * fixed inventory (the channel tests are about the transport; the real QEMU driver is tested in
 * test/agent/inventory-qemu.test.ts and by its own suite).
 */
import { SvError } from '../../src/errors/index.js';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../../src/appliance/clock.js';
import { HostAgent, type HostAgentOptions } from '../../src/agent/host-agent.js';
import { buildApp } from '../../src/api/app.js';
import type { HypervisorDriver, VmInfo } from '../../src/hypervisor/driver.js';
import { startTestAppliance, type TestAppliance } from '../api/helpers.js';
import { requireTool, run, tempDir } from '../helpers/env.js';

interface T {
  teardown(fn: () => void | Promise<void>): void;
}

/** A self-signed certificate for 127.0.0.1/localhost in a temp dir. */
export function makeCert(t: T, cn = 'shadowvault-test'): { cert: string; key: string; pem: Buffer; keyPem: Buffer } {
  requireTool('openssl');
  const dir = tempDir(t, 'sv-cert-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert]);
  return { cert, key, pem: readFileSync(cert), keyPem: readFileSync(key) };
}

export interface Listening extends TestAppliance {
  url: string;
  server: FastifyInstance;
}

/** The test appliance, listening on 127.0.0.1 (a second app over the same appliance when https is given). */
export async function listenAppliance(t: T, opts: { https?: { cert: Buffer; key: Buffer }; keepaliveMs?: number; maxFrame?: number; dir?: string; port?: number; clock?: Clock } = {}): Promise<Listening> {
  const ta = await startTestAppliance(t, { deps: { agentKeepaliveMs: opts.keepaliveMs ?? 0, agentMaxFrame: opts.maxFrame, ...(opts.clock ? { clock: opts.clock } : {}) }, dir: opts.dir });
  const server = opts.https ? await buildApp(ta.appliance, { logger: pino({ level: 'silent' }), https: opts.https }) : ta.app;
  if (server !== ta.app) t.teardown(() => server.close());
  await server.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { ...ta, server, url: `${opts.https ? 'https' : 'http'}://127.0.0.1:${port}` };
}

export function vm(id: string, name: string): VmInfo {
  return {
    id, name, state: 'running',
    disks: [{ key: 'virtio0', device: 'drive0', format: 'qcow2', virtualSize: 1 << 30, path: `/var/lib/vms/${name}.qcow2`, identity: `${id}-d0`, snapshottable: true, tracking: { state: 'none', persistent: true } }],
    guestAgent: { present: false, answering: false },
  };
}

/** A driver with a fixed, changeable VM list (views are not its business: the methods' tests use QEMU). */
export class FixedDriver implements HypervisorDriver {
  readonly hypervisor = { name: 'qemu' as const, version: 'fixed-test' };
  vms: VmInfo[];
  constructor(vms: VmInfo[]) {
    this.vms = vms;
  }
  async listVms(): Promise<VmInfo[]> {
    return this.vms;
  }
  async checkOnline(): Promise<{ possible: boolean; unmet: { requirement: 'guest-agent'; reason: string }[] }> {
    return { possible: false, unmet: [{ requirement: 'guest-agent', reason: 'no guest agent channel' }] };
  }
  async createView(): Promise<never> {
    throw new Error('FixedDriver has no views');
  }
  async importVm(): Promise<never> {
    throw new SvError('SV_ERR_HYPERVISOR_IMPORT_NOT_SUPPORTED', 'FixedDriver imports nothing', {});
  }
  async cleanupLeftovers(): Promise<{ removed: string[]; errors: [] }> {
    return { removed: [], errors: [] };
  }
  async close(): Promise<void> {}
}

export async function startAgent(t: T, o: Partial<HostAgentOptions> & { appliance: URL; driver: HypervisorDriver }): Promise<HostAgent> {
  const agent = new HostAgent({
    dataDir: o.dataDir ?? tempDir(t, 'sv-agent-'),
    name: 'host-a',
    cluster: null,
    version: '0.0.0-test',
    log: pino({ level: process.env.SV_TEST_AGENT_LOG ?? 'silent' }),
    pollMs: 200,
    keepaliveMs: 0,
    backoffMs: { min: 50, max: 400 },
    ...o,
  });
  t.teardown(() => agent.stop());
  await agent.start();
  return agent;
}

/** Resolve when `emitter` emits `event` (rejects after `ms`). */
export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string, ms = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    emitter.once(event, (v: T) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/** Poll `check` until it returns a value (not undefined); fails after `ms`. */
export async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
