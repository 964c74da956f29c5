/** The engine of a build without src/sync: every operation is refused with a catalogued error. */
import { SvError } from '../../errors/index.js';
import type { Engine } from './index.js';

function refuse(): never {
  throw new SvError('SV_ERR_APPLIANCE_ENGINE_UNAVAILABLE', 'this build has no sync engine (src/sync); backups, restores and store jobs are unavailable', {});
}

export const unavailableEngine: Engine = {
  available: false,
  backup: async () => refuse(),
  listPoints: async () => [],
  restore: async () => refuse(),
  exportImage: async () => refuse(),
  readConfiguration: async () => refuse(),
  check: async () => refuse(),
  verify: async () => refuse(),
  prune: async () => refuse(),
  gc: async () => refuse(),
  repair: async () => refuse(),
  stats: async () => ({}),
};
