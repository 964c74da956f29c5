/**
 * Host agents: pairing (admin makes a code; the agent redeems it, public route guarded by the code and its
 * channel binding), the agents' control channel (WebSocket, agent credential), the agent list and revoke
 * (admin), and the inventory they report: /hosts, /vms and /clusters (viewer).
 * Beyond loopback, pairing and the channel need TLS (SV_ERR_AGENT_INSECURE): a pairing over plain http
 * cannot be bound to a certificate, and a credential would cross the network in clear.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NO_TLS, isLoopbackHost } from '../../agent/channel/binding.js';
import { buildClusters } from '../../appliance/agents/clusters.js';
import type { PairRequest } from '../../appliance/agents/registry.js';
import { SvError } from '../../errors/index.js';
import type { RouteDeps } from '../app.js';
import { ERROR_REPLIES, idParams } from '../schemas.js';

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max }) as const;
const hostName = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;

const pairBody = {
  type: 'object',
  required: ['pairingId', 'proof', 'name', 'cluster', 'agentVersion', 'hypervisor'],
  additionalProperties: false,
  properties: {
    pairingId: { type: 'string', pattern: '^[0-9a-f]{8}$' },
    proof: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    name: hostName,
    cluster: { anyOf: [hostName, { type: 'null' }] },
    agentVersion: text(64),
    hypervisor: { type: 'object', required: ['name', 'version'], additionalProperties: false, properties: { name: text(64), version: { type: 'string', maxLength: 256 } } },
  },
} as const;

const agentView = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, cluster: { type: ['string', 'null'] }, agentVersion: { type: 'string' },
    hypervisor: anyObject, pairedAt: { type: 'string' }, lastSeenAt: { type: 'string' }, revokedAt: { type: 'string' }, connected: { type: 'boolean' },
    fingerprint: { type: 'string' },
  },
} as const;

export async function agentRoutes(app: FastifyInstance, { appliance, tlsFingerprint }: RouteDeps): Promise<void> {
  const agents = appliance.agents;
  const tags = ['agents'];
  const requireSecure = async (req: FastifyRequest): Promise<void> => {
    if (tlsFingerprint === NO_TLS && !isLoopbackHost(req.ip)) {
      throw new SvError('SV_ERR_AGENT_INSECURE', `agents pair and connect over TLS beyond loopback (${req.ip} came over plain http); serve with --tls-cert/--tls-key`, { ip: req.ip });
    }
  };

  app.post<{ Body: { ttlMinutes?: number } }>('/agents/pairing', {
    config: { role: 'admin' },
    schema: {
      summary: 'Create a one-time pairing code for a host agent (shown once; expires, 15 min by default)',
      tags,
      body: { type: 'object', additionalProperties: false, properties: { ttlMinutes: { type: 'integer', minimum: 1, maximum: 1440 } } },
      response: { 201: { type: 'object', required: ['code', 'expiresAt'], properties: { code: { type: 'string' }, expiresAt: { type: 'string' }, fingerprint: { type: ['string', 'null'] } } }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const p = await agents.registry.createPairing(req.body?.ttlMinutes === undefined ? undefined : req.body.ttlMinutes * 60_000);
    return reply.status(201).send({ ...p, fingerprint: tlsFingerprint === NO_TLS ? null : tlsFingerprint });
  });

  app.post<{ Body: PairRequest }>('/agents/pair', {
    config: { role: 'public' },
    preHandler: requireSecure,
    schema: {
      summary: 'Agent side of pairing: exchange a pairing code id and its proof (bound to the certificate the agent saw) for an agent credential',
      tags,
      body: pairBody,
      response: { 201: { type: 'object', required: ['agentId', 'credential'], properties: { agentId: { type: 'string' }, credential: { type: 'string' } } }, ...ERROR_REPLIES },
    },
  }, async (req, reply) => {
    const { agent, credential } = await agents.registry.redeem(req.body, tlsFingerprint);
    appliance.log.info({ agentId: agent.id, name: agent.name, ip: req.ip }, 'agent paired');
    return reply.status(201).send({ agentId: agent.id, credential });
  });

  app.get('/agents', { config: { role: 'admin' }, schema: { summary: 'List paired host agents', tags, response: { 200: { type: 'array', items: agentView }, ...ERROR_REPLIES } } }, async () => agents.registry.list().map((a) => {
    const { tokenId: _t, ...rest } = a;
    return { ...rest, connected: agents.connected(a.id) };
  }));

  app.delete<{ Params: { id: string } }>('/agents/:id', { config: { role: 'admin' }, schema: { summary: 'Revoke a host agent: its credential stops working and its connection is closed', tags, params: idParams, response: { 204: { type: 'null' }, ...ERROR_REPLIES } } }, async (req, reply) => {
    await agents.revoke(req.params.id);
    return reply.status(204).send();
  });

  app.get('/agents/self', { config: { role: 'agent' }, schema: { summary: 'The calling agent\'s own record and last inventory', tags, response: { 200: anyObject, ...ERROR_REPLIES } } }, async (req) => {
    const id = req.token?.agentId ?? '';
    const a = agents.registry.get(id);
    if (!a) throw new SvError('SV_ERR_AGENT_NOT_FOUND', `no agent ${id}`, { id });
    return { id: a.id, name: a.name, cluster: a.cluster, connected: agents.connected(a.id), inventory: agents.inventory.hostOf(a.id) ?? null };
  });

  app.get('/agents/connect', {
    config: { role: 'agent' },
    websocket: true,
    preHandler: requireSecure,
    schema: { summary: 'The agent control channel (WebSocket upgrade; binary frames, see docs/AGENT.md)', tags },
  }, (socket, req) => {
    agents.attach(req.token?.agentId ?? '', socket);
  });

  app.get('/hosts', { config: { role: 'viewer' }, schema: { summary: 'Hypervisor hosts (one per paired agent) and whether their agent is connected', tags: ['inventory'], response: { 200: { type: 'array', items: anyObject }, ...ERROR_REPLIES } } }, async () => agents.hosts());
  app.get('/clusters', {
    config: { role: 'viewer' },
    schema: { summary: 'Clusters: per cluster its nodes, its VMs, the node that runs each VM, its last recovery point and protection state', tags: ['inventory'], response: { 200: { type: 'array', items: anyObject }, ...ERROR_REPLIES } },
  }, async () => buildClusters({
    hosts: agents.hosts(), vms: agents.vms(), sources: appliance.protection.sources(), jobs: appliance.db.jobs.value,
    lastPoint: async (name) => {
      if (!appliance.engine.available) return undefined;
      const p = (await appliance.engine.listPoints(name)).filter((x) => !x.damaged).at(-1);
      return p ? { id: p.id, time: p.time, ...(p.consistency ? { consistency: p.consistency } : {}) } : undefined;
    },
  }));
  app.get('/vms', {
    config: { role: 'viewer' },
    schema: { summary: 'VMs reported by the host agents, with disks, whether online backup is possible, and for a protected VM its source and last point (with how each disk\'s changes were found)', tags: ['inventory'], response: { 200: { type: 'array', items: anyObject }, ...ERROR_REPLIES } },
  }, async () => {
    const sources = appliance.protection.sources();
    const last = new Map<string, Promise<VmLastPoint | null>>();
    const lastOf = (name: string): Promise<VmLastPoint | null> => {
      let p = last.get(name);
      if (!p) last.set(name, (p = lastPointOf(name)));
      return p;
    };
    const lastPointOf = async (name: string): Promise<VmLastPoint | null> => {
      if (!appliance.engine.available) return null;
      const pt = (await appliance.engine.listPoints(name)).filter((x) => !x.damaged).at(-1);
      return pt ? { id: pt.id, time: pt.time, tracking: pt.disks.map((d) => ({ disk: d.name, ...(d.tracking ?? {}) })) } : null;
    };
    return Promise.all(agents.vms().map(async (v) => {
      const s = sources.find((x) => x.vm?.id === v.id);
      return s ? { ...v, protection: { source: { id: s.id, name: s.name, host: s.host }, lastPoint: await lastOf(s.name) } } : v;
    }));
  });
}

/** `vms --json`: a protected VM's last point, per disk how its changes were found (`fallback`: why no tracker). */
interface VmLastPoint {
  readonly id: string;
  readonly time: string;
  readonly tracking: ReadonlyArray<{ readonly disk: string; readonly method?: string; readonly reason?: string; readonly fallback?: string }>;
}
