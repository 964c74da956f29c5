/**
 * An AgentRpc that calls agent handlers in this process, with what a real channel does to a call: params
 * and results through JSON, payloads copied, errors through WireError. For the tests of the agent methods
 * and the `agent` DiskSource without a network (the channel has its own tests; the end-to-end tests use it).
 */
import { fromWire, SvError, toWire } from '../../src/errors/index.js';
import type { AgentAnswer, AgentHandlers, AgentMethod, AgentParams, AgentRpc } from '../../src/agent/rpc.js';
import { answerPayload } from '../../src/agent/rpc.js';

export class LoopbackRpc implements AgentRpc {
  readonly #handlers: Partial<AgentHandlers>;
  readonly #agentId: string;
  #sent = 0;
  #received = 0;
  calls = 0;

  constructor(agentId: string, handlers: Partial<AgentHandlers>) {
    this.#agentId = agentId;
    this.#handlers = handlers;
  }

  async call<M extends AgentMethod>(agentId: string, method: M, params: AgentParams<M>, payload?: Uint8Array, signal?: AbortSignal): Promise<AgentAnswer<M>> {
    if (agentId !== this.#agentId) throw new SvError('SV_ERR_AGENT_NO_HOST', `agent ${agentId} is not connected`, { agentId });
    const handler = this.#handlers[method] as AgentHandlers[M] | undefined;
    if (!handler) throw new SvError('SV_ERR_AGENT_UNKNOWN_METHOD', `the agent serves no method ${JSON.stringify(method)}`, { method }); // as agent-dispatch.ts
    const header = JSON.stringify({ method, params });
    this.#sent += header.length + (payload?.length ?? 0);
    this.calls++;
    try {
      const a = await handler(JSON.parse(header).params as AgentParams<M>, payload ? new Uint8Array(payload) : undefined, signal ?? new AbortController().signal);
      const result = JSON.parse(JSON.stringify(a.result)) as AgentAnswer<M>['result'];
      // Pieces (payloadParts) are joined as the channel joins them into a frame.
      const joined = answerPayload(a);
      this.#received += JSON.stringify(a.result).length + (joined?.length ?? 0);
      return { result, ...(joined ? { payload: new Uint8Array(joined) } : {}) };
    } catch (err) {
      throw fromWire(toWire(err));
    }
  }

  bytes(): { sent: number; received: number } {
    return { sent: this.#sent, received: this.#received };
  }
}
