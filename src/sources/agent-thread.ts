/**
 * Imported by the engine thread before its first operation when the appliance has host agents (ThreadedEngine
 * names it in `openerModules` and passes the relay port in workerData.agentPort): registers the `agent` disk
 * source opener over the relay to the main thread's AgentRpc (agent-relay.ts).
 */
import { workerData } from 'node:worker_threads';
import type { EngineThreadData } from '../appliance/engine/protocol.js';
import { agentOpener } from './agent.js';
import { RelayRpc } from './agent-relay.js';
import { registerOpener } from './registry.js';

const port = (workerData as EngineThreadData | undefined)?.agentPort;
if (port) registerOpener('agent', agentOpener(new RelayRpc(port)), { replace: true });
