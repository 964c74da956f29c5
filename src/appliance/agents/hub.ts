/**
 * The appliance's AgentRpc: the open control channels, one per agent id. A new connection of an agent
 * replaces its old one (whose pending calls reject with SV_ERR_AGENT_DISCONNECTED). Calls to an agent with no
 * open channel reject with SV_ERR_AGENT_OFFLINE without sending anything. Bytes are counted per agent across
 * its connections.
 */
import type { WebSocket } from 'ws';
import { SvError } from '../../errors/index.js';
import type { AgentAnswer, AgentMethod, AgentParams, AgentRpc } from '../../agent/rpc.js';
import { Peer, type Dispatcher } from '../../agent/channel/peer.js';
import type { WireError } from '../../errors/index.js';

export interface HubOptions {
  readonly maxFrame?: number;
  readonly keepaliveMs?: number;
  /** Calls the agent makes to the appliance (inventory pushes), per agent. */
  readonly dispatcherFor: (agentId: string) => Dispatcher;
  readonly onUp: (agentId: string, up: boolean, reason?: SvError) => void;
  readonly onNotice?: (agentId: string, error: WireError, from: 'peer' | 'local') => void;
}

export class AgentHub implements AgentRpc {
  readonly #o: HubOptions;
  readonly #peers = new Map<string, Peer>();
  readonly #closedBytes = new Map<string, { sent: number; received: number }>();

  constructor(opts: HubOptions) {
    this.#o = opts;
  }

  isConnected(agentId: string): boolean {
    const p = this.#peers.get(agentId);
    return p !== undefined && !p.closed;
  }

  connectedIds(): string[] {
    return [...this.#peers.keys()];
  }

  attach(agentId: string, ws: WebSocket): Peer {
    this.#peers.get(agentId)?.close(new SvError('SV_ERR_AGENT_DISCONNECTED', 'the agent connected again; this older connection is closed', { agentId }));
    const peer: Peer = new Peer(ws, {
      dispatcher: this.#o.dispatcherFor(agentId),
      maxFrame: this.#o.maxFrame,
      keepaliveMs: this.#o.keepaliveMs,
      onNotice: (error, from) => this.#o.onNotice?.(agentId, error, from),
      onClose: (reason) => {
        const t = this.#closedBytes.get(agentId) ?? { sent: 0, received: 0 };
        this.#closedBytes.set(agentId, { sent: t.sent + peer.bytes.sent, received: t.received + peer.bytes.received });
        if (this.#peers.get(agentId) === peer) {
          this.#peers.delete(agentId);
          this.#o.onUp(agentId, false, reason);
        }
      },
    });
    this.#peers.set(agentId, peer);
    this.#o.onUp(agentId, true);
    return peer;
  }

  /** Close an agent's connection (revoke, shutdown). */
  disconnect(agentId: string, reason: SvError): void {
    this.#peers.get(agentId)?.close(reason);
  }

  closeAll(): void {
    for (const [id, p] of this.#peers) p.close(new SvError('SV_ERR_AGENT_DISCONNECTED', 'the appliance is stopping', { agentId: id }));
  }

  async call<M extends AgentMethod>(agentId: string, method: M, params: AgentParams<M>, payload?: Uint8Array, signal?: AbortSignal): Promise<AgentAnswer<M>> {
    const peer = this.#peers.get(agentId);
    if (!peer || peer.closed) throw new SvError('SV_ERR_AGENT_OFFLINE', `agent ${agentId} is not connected; ${method} was not sent`, { agentId, method });
    return (await peer.call(method, params as Record<string, unknown>, payload, signal)) as AgentAnswer<M>;
  }

  bytes(agentId: string): { sent: number; received: number } {
    const t = this.#closedBytes.get(agentId) ?? { sent: 0, received: 0 };
    const p = this.#peers.get(agentId);
    return { sent: t.sent + (p?.bytes.sent ?? 0), received: t.received + (p?.bytes.received ?? 0) };
  }
}
