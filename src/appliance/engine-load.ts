/** The engine and worker pool statistics `serve` runs with: the sync engine on the configured store. */
import type { Logger } from 'pino';
import { poolStats } from '../pool/index.js';
import type { PoolStats } from './appliance.js';
import type { Engine } from './engine.js';
import { SyncEngine } from './engine-sync.js';

export async function loadEngine(storeDir: string, log: Logger): Promise<Engine> {
  log.debug({ store: storeDir }, 'sync engine on the volume store');
  return new SyncEngine(storeDir);
}

/** The process-wide pool's numbers for /metrics (zeros until a job starts the pool). */
export function poolMetrics(): PoolStats {
  const s = poolStats();
  return { utilization: s.utilization, queueDepth: s.queueSize, threads: s.threads };
}

export async function loadPoolStats(): Promise<() => PoolStats> {
  return poolMetrics;
}
