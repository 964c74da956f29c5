/**
 * The agent's methods (everything in AgentHandlers but `inventory.get`, which the channel answers from its
 * inventory): views over the HypervisorDriver (view.ts), the range codec (range-codec.ts), restore to the
 * host (restore.ts), whole-VM import (import.ts). The channel dispatches to `handlers`; `close()` releases every open view (tracking
 * rolled back) and removes every unfinished restore, at agent shutdown.
 */
import type { AgentHandlers } from '../rpc.js';
import type { MethodDeps } from './deps.js';
import { importHandlers, type ImportMethod } from './import.js';
import { restoreHandlers, type RestoreMethod } from './restore.js';
import { viewHandlers, type ViewMethod } from './view.js';

export type { MethodDeps } from './deps.js';
export type MethodHandlers = Pick<AgentHandlers, ViewMethod | RestoreMethod | ImportMethod>;

export interface AgentMethodSet {
  readonly handlers: MethodHandlers;
  /** View sessions open now. */
  readonly sessions: number;
  close(): Promise<void>;
}

export function createMethods(deps: MethodDeps): AgentMethodSet {
  const views = viewHandlers(deps);
  const imports = importHandlers(deps);
  const restores = restoreHandlers(deps, imports.folders);
  return {
    handlers: { ...views.handlers, ...restores.handlers, ...imports.handlers },
    get sessions() { return views.sessions; },
    close: async () => {
      await Promise.all([views.close(), restores.close()]);
      await imports.close();
    },
  };
}
