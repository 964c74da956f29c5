/** The engine `serve` runs with: the sync engine on the configured store, its jobs in the engine thread. */
import type { Logger } from 'pino';
import type { Engine } from './index.js';
import { ThreadedEngine } from './threaded.js';

export async function loadEngine(storeDir: string, log: Logger, stateDir?: string): Promise<Engine> {
  log.debug({ store: storeDir, stateDir }, 'sync engine on the volume store, jobs in the engine thread');
  return new ThreadedEngine(storeDir, stateDir !== undefined ? { stateDir } : {});
}
