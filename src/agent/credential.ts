/**
 * The agent's credential files, one per appliance it is paired with, mode 0600, written atomically (temp +
 * fsync + rename): the first pairing in `<data-dir>/credential.json`, every further appliance in
 * `<data-dir>/pairings/<sha-256 of its origin, 16 hex>.json`. Each holds the appliance origin, the agent id
 * there, the credential (an `agent`-role token bound to that id), the pinned certificate fingerprint ("none"
 * for loopback http) and, once learned, the appliance's id and name (its answer to the first inventory push;
 * a later different id is refused: src/agent/host-agent.ts). Written at pairing; every later start reuses
 * them all (the agent serves every appliance it is paired with). Losing one means pairing again with that
 * appliance.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
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
  /** The appliance's own id and name, learned from it after pairing (absent until then). */
  readonly applianceId?: string;
  readonly applianceName?: string;
}

export function credentialPath(dataDir: string): string {
  return join(dataDir, 'credential.json');
}

/** The file of the pairing with the appliance at `origin` (not the first one). */
function pairingPath(dataDir: string, origin: string): string {
  return join(dataDir, 'pairings', `${createHash('sha256').update(origin).digest('hex').slice(0, 16)}.json`);
}

/** Save `c`: in credential.json when that is free or holds the same appliance, else in pairings/. */
export async function saveCredential(dataDir: string, c: AgentCredential): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const first = await loadCredential(dataDir);
  let path = credentialPath(dataDir);
  if (first && first.appliance !== c.appliance) {
    path = pairingPath(dataDir, c.appliance);
    await mkdir(join(dataDir, 'pairings'), { recursive: true, mode: 0o700 });
  }
  await atomicWrite(path, `${JSON.stringify(c, null, 1)}\n`, 0o600);
}

/** Every stored pairing: credential.json first, then pairings/ (by file name). */
export async function loadCredentials(dataDir: string): Promise<AgentCredential[]> {
  const out: AgentCredential[] = [];
  const first = await loadCredential(dataDir);
  if (first) out.push(first);
  let names: string[] = [];
  try {
    names = (await readdir(join(dataDir, 'pairings'))).filter((n) => /^[0-9a-f]{16}\.json$/.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SvError('SV_ERR_AGENT_CREDENTIAL', `cannot list ${join(dataDir, 'pairings')}: ${(err as Error).message}`, { dataDir }, { cause: err });
  }
  for (const n of names) {
    const c = await loadCredential(dataDir, join(dataDir, 'pairings', n));
    if (c && !out.some((o) => o.appliance === c.appliance)) out.push(c);
  }
  return out;
}

/** The stored pairing with the appliance at `origin`, or undefined. */
export async function credentialFor(dataDir: string, origin: string): Promise<AgentCredential | undefined> {
  return (await loadCredentials(dataDir)).find((c) => c.appliance === origin);
}

/** The stored credential (credential.json, or `path`), or undefined when there is none. A malformed file is an error (never overwritten silently). */
export async function loadCredential(dataDir: string, path = credentialPath(dataDir)): Promise<AgentCredential | undefined> {
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
  if (c.version !== 1 || typeof c.appliance !== 'string' || typeof c.agentId !== 'string' || typeof c.credential !== 'string' || typeof c.fingerprint !== 'string' || typeof c.pairedAt !== 'string'
    || (c.applianceId !== undefined && typeof c.applianceId !== 'string') || (c.applianceName !== undefined && typeof c.applianceName !== 'string')) {
    throw new SvError('SV_ERR_AGENT_CREDENTIAL', `the agent credential ${path} is malformed; remove it and pair again`, { path });
  }
  return c as AgentCredential;
}
