/**
 * The appliance's side of host agents, wired together: the registry (pairing, records, revoke), the hub (the
 * open channels; it IS the appliance's AgentRpc: `appliance.agents.rpc`), and the inventory store fed by the
 * agents' `inventory.push` calls. The API routes (src/api/routes/agents.ts) are thin over this.
 */
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { SvError, toWire } from '../../errors/index.js';
import type { AgentRpc, InventoryPushAnswer } from '../../agent/rpc.js';
import type { ApplianceRef } from '../../agent/owner.js';
import { DEFAULT_MAX_FRAME } from '../../agent/channel/frame.js';
import type { Answer, Dispatcher } from '../../agent/channel/peer.js';
import type { StateDb } from '../state.js';
import type { TokenStore } from '../tokens.js';
import { checkInventory } from './inventory-check.js';
import { AgentHub } from './hub.js';
import { InventoryStore, type HostView, type VmView } from './inventory.js';
import { AgentRegistry } from './registry.js';

export interface AgentServiceOptions {
  readonly db: StateDb;
  readonly tokens: TokenStore;
  readonly now: () => number;
  readonly log: Logger;
  /** Metrics hook: an agent came up or went down. */
  readonly agentSeen: (agentId: string, up: boolean) => void;
  /** Metrics hook: an agent was revoked (its series go). */
  readonly agentRemoved?: (agentId: string) => void;
  readonly maxFrame?: number;
  readonly keepaliveMs?: number;
  /** Who this appliance is: the answer to every inventory push (agents key VM ownership records on it). */
  readonly identity?: () => ApplianceRef;
  /** Called after an agent's inventory push was stored (not awaited by the push: the agent gets its answer first). */
  readonly onInventory?: (agentId: string) => void;
}

export class AgentService {
  readonly registry: AgentRegistry;
  readonly inventory: InventoryStore;
  /** Largest channel frame both ways (the WebSocket server's maxPayload). */
  readonly maxFrame: number;
  readonly #hub: AgentHub;
  readonly #o: AgentServiceOptions;

  constructor(o: AgentServiceOptions) {
    this.#o = o;
    this.maxFrame = o.maxFrame ?? DEFAULT_MAX_FRAME;
    this.registry = new AgentRegistry(o.db, o.tokens, o.now);
    this.inventory = new InventoryStore(o.db, o.now);
    this.#hub = new AgentHub({
      maxFrame: this.maxFrame,
      keepaliveMs: o.keepaliveMs,
      dispatcherFor: (id) => this.#dispatcher(id),
      onUp: (id, up, reason) => {
        o.agentSeen(id, up);
        if (up) o.log.info({ agentId: id }, 'agent connected');
        else o.log.warn({ agentId: id, reason: reason?.toWire() }, 'agent disconnected');
        void this.registry.touch(id).catch((err: unknown) => o.log.warn({ err: toWire(err) }, 'cannot save agent last-seen time'));
      },
      onNotice: (id, error, from) => o.log.warn({ agentId: id, error, from }, 'agent channel notice'),
    });
    for (const a of this.registry.list()) if (!a.revokedAt) o.agentSeen(a.id, false);
  }

  /** Calls to agents (jobs for VM sources go through this). */
  get rpc(): AgentRpc {
    return this.#hub;
  }

  connected(agentId: string): boolean {
    return this.#hub.isConnected(agentId);
  }

  /** A WebSocket authenticated as `agentId` (the route checked the credential). */
  attach(agentId: string, ws: WebSocket): void {
    const a = this.registry.get(agentId);
    if (!a || a.revokedAt) {
      ws.close(1008, 'SV_ERR_AGENT_REFUSED');
      return;
    }
    this.#hub.attach(agentId, ws);
  }

  async revoke(agentId: string): Promise<void> {
    await this.registry.revoke(agentId);
    this.#hub.disconnect(agentId, new SvError('SV_ERR_AGENT_REFUSED', `agent ${agentId} was revoked`, { agentId }));
    await this.inventory.drop(agentId);
    this.#o.agentRemoved?.(agentId);
    this.#o.log.warn({ agentId }, 'agent revoked');
  }

  hosts(): HostView[] {
    return this.inventory.hosts(this.registry.list(), (id) => this.connected(id));
  }

  vms(): VmView[] {
    return this.inventory.vms(this.registry.list(), (id) => this.connected(id), this.#o.identity?.().id);
  }

  close(): void {
    this.#hub.closeAll();
  }

  #dispatcher(agentId: string): Dispatcher {
    return {
      dispatch: async (method, params): Promise<Answer> => {
        if (method !== 'inventory.push') throw new SvError('SV_ERR_AGENT_UNKNOWN_METHOD', `the appliance serves agents no method ${JSON.stringify(method)}`, { method });
        for (const k of Object.keys(params)) if (k !== 'inventory') throw new SvError('SV_ERR_AGENT_BAD_PARAMS', `inventory.push: unknown field ${k}`, { method, field: k });
        const report = checkInventory(params.inventory);
        const agent = this.registry.get(agentId);
        if (!agent || agent.revokedAt) throw new SvError('SV_ERR_AGENT_REFUSED', `agent ${agentId} is revoked`, { agentId });
        this.inventory.checkScope(agent, report, this.registry.list(), (id) => this.connected(id));
        // both saves issued now, together: a stop that flushes the state waits for them
        await Promise.all([
          this.inventory.put(agent, report),
          this.registry.touch(agentId, { name: report.host.name, cluster: report.host.cluster, agentVersion: report.host.agentVersion, hypervisor: report.host.hypervisor }),
        ]);
        if (this.#o.onInventory) setImmediate(this.#o.onInventory, agentId);
        const answer: InventoryPushAnswer = this.#o.identity ? { appliance: this.#o.identity() } : {};
        return { result: answer as Record<string, unknown> };
      },
    };
  }
}
