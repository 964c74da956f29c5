/**
 * API tokens: random 32-byte secrets shown once, stored as sha256 hashes with a role. The first start of an
 * appliance (no tokens at all) creates an admin token and writes it to a 0600 file for the operator.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFileDurable } from './durable.js';
import type { Role, TokenRecord } from './model.js';
import type { StateDb } from './state.js';

export const TOKEN_PREFIX = 'svt_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class TokenStore {
  #db: StateDb;
  #byHash = new Map<string, TokenRecord>();
  #now: () => number;

  constructor(db: StateDb, now: () => number) {
    this.#db = db;
    this.#now = now;
    for (const t of db.tokens.value) this.#byHash.set(t.sha256, t);
  }

  list(): TokenRecord[] {
    return this.#db.tokens.value;
  }

  /** Create a token; returns the record and the secret (the only time it exists outside the caller). */
  async create(name: string, role: Role, beforeSave?: (token: string) => Promise<void>, agentId?: string): Promise<{ record: TokenRecord; token: string }> {
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = { id: randomUUID(), name, role, sha256: hashToken(token), createdAt: new Date(this.#now()).toISOString(), ...(agentId ? { agentId } : {}) };
    await beforeSave?.(token);
    this.#byHash.set(record.sha256, record);
    await this.#db.tokens.save([...this.#db.tokens.value, record]);
    return { record, token };
  }

  async remove(id: string): Promise<boolean> {
    const rec = this.#db.tokens.value.find((t) => t.id === id);
    if (!rec) return false;
    this.#byHash.delete(rec.sha256);
    await this.#db.tokens.save(this.#db.tokens.value.filter((t) => t.id !== id));
    return true;
  }

  /** The record of a presented token, or undefined. */
  lookup(token: string): TokenRecord | undefined {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
    return this.#byHash.get(hashToken(token));
  }

  /** On first start: create an admin token and write it to `file` (0600). Returns true when it did. */
  async bootstrap(file: string): Promise<boolean> {
    if (this.#db.tokens.value.length > 0) return false;
    // the file first: a crash in between leaves no token nobody can read (the next start makes a new one)
    await this.create('initial admin', 'admin', (token) => writeFileDurable(file, `${token}\n`, 0o600));
    return true;
  }
}
