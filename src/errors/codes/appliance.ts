import type { ErrorTable } from '../spec.js';

/** Errors of the appliance itself (src/appliance/): state files, start-up, the engine behind it. */
export const APPLIANCE_ERRORS = {
  SV_ERR_APPLIANCE_STATE_CORRUPT: { status: 500, summary: 'An appliance state file (groups, sources, jobs, tokens) cannot be parsed; the message names the file.' },
  SV_ERR_APPLIANCE_LOCKED: { status: 409, summary: 'Another appliance process already runs on this data folder (its pid is in appliance.lock).' },
  SV_ERR_APPLIANCE_ENGINE_UNAVAILABLE: { status: 503, summary: 'The sync engine this operation needs is not available in this build.' },
  SV_ERR_APPLIANCE_TLS: { status: 500, summary: 'The TLS certificate or key given to `serve` cannot be read.' },
} as const satisfies ErrorTable;
