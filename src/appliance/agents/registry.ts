/**
 * The agent registry: pairing codes (single use, expiring, stored as HMAC keys) and paired agents.
 *
 * Pairing (`redeem`): the code's id must name a pairing record neither used nor expired; the proof must be
 * the HMAC of the appliance's own certificate fingerprint (channel binding, src/agent/channel/binding.ts).
 * A record is marked used on its first redeem attempt whatever the outcome, so a code is never tried twice
 * (a man in the middle burns it rather than learns anything). Then an agent record and its credential (a
 * token of role `agent` bound to the agent id) are saved; the credential text is returned once.
 * Revoking removes the credential (every later request with it is 401) and marks the record revoked; the
 * caller closes the agent's connection.
 */
import { randomUUID } from 'node:crypto';
import { SvError } from '../../errors/index.js';
import { newPairingCode, pairingKey, proofMatches } from '../../agent/channel/binding.js';
import type { StateDb } from '../state.js';
import type { TokenStore } from '../tokens.js';
import type { AgentRecord, PairingRecord } from './model.js';

export const DEFAULT_PAIRING_TTL_MS = 15 * 60_000;

export interface PairRequest {
  pairingId: string;
  proof: string;
  name: string;
  cluster: string | null;
  agentVersion: string;
  hypervisor: { name: string; version: string };
}

export class AgentRegistry {
  readonly #db: StateDb;
  readonly #tokens: TokenStore;
  readonly #now: () => number;

  constructor(db: StateDb, tokens: TokenStore, now: () => number) {
    this.#db = db;
    this.#tokens = tokens;
    this.#now = now;
  }

  list(): AgentRecord[] {
    return this.#db.agents.value;
  }

  get(id: string): AgentRecord | undefined {
    return this.#db.agents.value.find((a) => a.id === id);
  }

  /** A new pairing code; the text exists only in the answer. */
  async createPairing(ttlMs = DEFAULT_PAIRING_TTL_MS): Promise<{ code: string; expiresAt: string }> {
    const now = this.#now();
    const { id, secret, code } = newPairingCode();
    const rec: PairingRecord = { id, key: pairingKey(secret), createdAt: new Date(now).toISOString(), expiresAt: new Date(now + ttlMs).toISOString() };
    // used and expired codes are kept a day (for the log), then forgotten
    const keep = this.#db.pairings.value.filter((p) => Date.parse(p.expiresAt) > now - 86_400_000);
    await this.#db.pairings.save([...keep, rec]);
    return { code, expiresAt: rec.expiresAt };
  }

  /** Exchange a pairing code (its id + proof) for an agent credential. `fingerprint`: the certificate this appliance serves. */
  async redeem(req: PairRequest, fingerprint: string): Promise<{ agent: AgentRecord; credential: string }> {
    const now = this.#now();
    const rec = this.#db.pairings.value.find((p) => p.id === req.pairingId);
    const invalid = (why: string): SvError => new SvError('SV_ERR_AGENT_PAIRING_INVALID', `pairing code ${req.pairingId}: ${why}; create a new one with \`shadowvault agents pair\``, { pairingId: req.pairingId });
    if (!rec) throw invalid('unknown');
    if (rec.usedAt) throw invalid('already used');
    if (Date.parse(rec.expiresAt) <= now) throw invalid(`expired at ${rec.expiresAt}`);
    const holder = this.#db.agents.value.find((a) => !a.revokedAt && a.name === req.name);
    if (holder) throw new SvError('SV_ERR_API_CONFLICT', `an agent named "${req.name}" is paired already (${holder.id}); revoke it first (\`shadowvault agents revoke ${holder.id}\`) or give --name`, { agentId: holder.id, name: req.name });
    rec.usedAt = new Date(now).toISOString();
    await this.#db.pairings.save();
    if (!proofMatches(rec.key, fingerprint, req.proof)) {
      throw new SvError('SV_ERR_AGENT_PAIRING_BINDING', `pairing code ${req.pairingId}: the proof does not match this appliance's certificate (the agent saw another one, or the code was mistyped); the code is spent`, { pairingId: req.pairingId });
    }
    const id = randomUUID();
    const { record, token } = await this.#tokens.create(`agent ${req.name}`, 'agent', undefined, id);
    const agent: AgentRecord = { id, name: req.name, cluster: req.cluster, agentVersion: req.agentVersion, hypervisor: req.hypervisor, pairedAt: new Date(now).toISOString(), tokenId: record.id, fingerprint };
    await this.#db.agents.save([...this.#db.agents.value, agent]);
    return { agent, credential: token };
  }

  /** Revoke: the credential stops working at once. Returns the record, or throws SV_ERR_AGENT_NOT_FOUND. */
  async revoke(id: string): Promise<AgentRecord> {
    const a = this.get(id);
    if (!a) throw new SvError('SV_ERR_AGENT_NOT_FOUND', `no agent ${id}`, { id });
    await this.#tokens.remove(a.tokenId);
    if (!a.revokedAt) {
      a.revokedAt = new Date(this.#now()).toISOString();
      await this.#db.agents.save();
    }
    return a;
  }

  /** Record contact (connect, disconnect, reports); persisted lazily with the next save. */
  async touch(id: string, update: Partial<Pick<AgentRecord, 'name' | 'cluster' | 'agentVersion' | 'hypervisor'>> = {}): Promise<void> {
    const a = this.get(id);
    if (!a) return;
    Object.assign(a, update, { lastSeenAt: new Date(this.#now()).toISOString() });
    await this.#db.agents.save();
  }
}
