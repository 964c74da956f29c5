/**
 * The agent side's Dispatcher: a known AgentMethods name, params checked on receipt (params.ts), then the
 * handler. A method this agent has no handler for is SV_ERR_AGENT_UNKNOWN_METHOD like an unknown name.
 */
import { SvError } from '../../errors/index.js';
import type { AgentHandlers, AgentMethod } from '../rpc.js';
import { checkParams, isAgentMethod } from './params.js';
import type { Answer, Dispatcher } from './peer.js';

export function agentDispatcher(handlers: Partial<AgentHandlers>): Dispatcher {
  return {
    async dispatch(method, params, payload, signal): Promise<Answer> {
      const handler = isAgentMethod(method) ? (handlers[method] as ((p: unknown, b: Uint8Array | undefined, s: AbortSignal) => Promise<Answer>) | undefined) : undefined;
      if (!handler) throw new SvError('SV_ERR_AGENT_UNKNOWN_METHOD', `the agent serves no method ${JSON.stringify(method)}`, { method });
      const checked = checkParams(method as AgentMethod, params);
      return handler(checked, payload.length ? payload : undefined, signal);
    },
  };
}
