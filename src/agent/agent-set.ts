/**
 * One host agent process serving every appliance it is paired with: a HostAgent per pairing kept in the data
 * dir (src/agent/credential.ts), each with its own control channel, credential, pinned certificate and method
 * handlers (a disconnect of one appliance releases only the views that appliance opened); all share the driver.
 *
 * The appliance given on the command line comes first: it pairs when a code is given and no pairing with it
 * is kept, and it alone cleans the driver's leftovers at start. Then every other kept pairing is started. A
 * pairing that the appliance refuses (revoked) ends that HostAgent only; `allRefused` resolves when none is
 * left.
 */
import { loadCredentials } from './credential.js';
import { HostAgent, type HostAgentOptions } from './host-agent.js';
import type { AgentMethodSet } from './methods/index.js';

export interface AgentSetOptions extends Omit<HostAgentOptions, 'handlers' | 'cleanupLeftovers'> {
  /** A fresh method set for one appliance (src/agent/methods createMethods). */
  readonly methods: () => AgentMethodSet;
  /** Called each time a channel is up (set before any agent starts, so that no connection is missed). */
  readonly onConnected?: (origin: string, agent: HostAgent) => void;
}

export interface AgentSet {
  readonly agents: readonly HostAgent[];
  /** Resolves with the last refusal when every appliance has refused this agent. */
  readonly allRefused: Promise<unknown>;
  stop(): Promise<void>;
}

export async function startAgentSet(o: AgentSetOptions): Promise<AgentSet> {
  
  const agents: HostAgent[] = [];
  const methodSets: AgentMethodSet[] = [];
  let refused = 0;
  let allRefused!: (err: unknown) => void;
  const all = new Promise<unknown>((r) => (allRefused = r));
  const add = async (appliance: URL, pairCode: string | undefined, first: boolean): Promise<void> => {
    const methods = o.methods();
    const agent = new HostAgent({ ...o, appliance, pairCode, handlers: methods.handlers, cleanupLeftovers: first });
    // that appliance is gone: release the views it opened now (tracking rolled back)
    agent.on('disconnected', () => void methods.close());
    agent.on('connected', () => o.onConnected?.(appliance.origin, agent));
    agent.once('refused', (err: unknown) => {
      void methods.close();
      if (++refused === agents.length) allRefused(err);
    });
    await agent.start();
    agents.push(agent);
    methodSets.push(methods);
  };
  await add(o.appliance, o.pairCode, true);
  for (const c of await loadCredentials(o.dataDir)) {
    if (c.appliance === o.appliance.origin) continue;
    await add(new URL(c.appliance), undefined, false);
    o.log.info({ appliance: c.appliance, agentId: c.agentId }, 'serving another appliance this agent is paired with');
  }
  return {
    agents,
    allRefused: all,
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(methodSets.map((m) => m.close()));
    },
  };
}
