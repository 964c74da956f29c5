/**
 * The agent's credential file: `<data-dir>/credential.json`, mode 0600, written atomically (temp + fsync +
 * rename). It holds the appliance origin, the agent id, the credential (an `agent`-role token bound to that
 * id) and the pinned certificate fingerprint ("none" for loopback http). Written once at pairing; every later
 * start reuses it. Losing it means pairing again.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SvError } from '../errors/index.js';
import { atomicWrite } from '../util/durable.js';

export interface AgentCredential {
  readonly version: 1;
  readonly appliance: string;
  readonly agentId: string;
  readonly credential: string;
  readonly fingerprint: string;
  readonly pairedAt: string;
}

export function credentialPath(dataDir: string): string {
  return join(dataDir, 'credential.json');
}

export async function saveCredential(dataDir: string, c: AgentCredential): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await atomicWrite(credentialPath(dataDir), `${JSON.stringify(c, null, 1)}\n`, 0o600);
}

/** The stored credential, or undefined when there is none. A malformed file is an error (never overwritten silently). */
export async function loadCredential(dataDir: string): Promise<AgentCredential | undefined> {
  const path = credentialPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SvError('SV_ERR_AGENT_CREDENTIAL', `cannot read the agent credential ${path}: ${(err as Error).message}`, { path }, { cause: err });
  }
  let c: Partial<AgentCredential>;
  try {
    c = JSON.parse(text) as Partial<AgentCredential>;
  } catch (err) {
    throw new SvError('SV_ERR_AGENT_CREDENTIAL', `the agent credential ${path} is not JSON; remove it and pair again`, { path }, { cause: err });
  }
  if (c.version !== 1 || typeof c.appliance !== 'string' || typeof c.agentId !== 'string' || typeof c.credential !== 'string' || typeof c.fingerprint !== 'string' || typeof c.pairedAt !== 'string') {
    throw new SvError('SV_ERR_AGENT_CREDENTIAL', `the agent credential ${path} is malformed; remove it and pair again`, { path });
  }
  return c as AgentCredential;
}
