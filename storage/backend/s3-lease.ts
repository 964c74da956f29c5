/**
 * The writer lease: one appliance writes a store on object storage. Locks (storage/lock.ts) stay on the
 * appliance; across appliances the only shared thing is the bucket, so the writer holds an object
 * `lease/writer.json` = { applianceId, host, pid, token, acquiredMs, expiresMs }.
 *
 * - take: no lease, an expired one, or one of the same appliance (a restarted or crashed process of it) → write
 *   ours; another appliance's unexpired lease → SV_ERR_BACKEND_LEASE_HELD naming holder and expiry.
 * - renew every ttl/3 while open; a renewal that finds another appliance's token marks the lease lost and every
 *   later write throws SV_ERR_BACKEND_LEASE_LOST; so do writes once renewals have failed for a whole ttl (the
 *   lease may have expired and been taken meanwhile).
 * - release at close: removed if it is still ours.
 * Writes are conditional where the server supports it (create with If-None-Match: *, take-over with If-Match:
 * the ETag read), so two appliances starting at once cannot both win; without conditional writes (s3rver) the
 * lease is written and read back, which narrows but does not close that window (documented limit).
 * Clocks: expiry is the writer's wall clock; appliances whose clocks differ by more than the ttl can misjudge
 * expiry, so the ttl is minutes, not seconds.
 */
import { randomUUID } from 'node:crypto';
import { SvError } from '../../src/errors/index.js';

export interface LeaseRecord {
  readonly applianceId: string;
  readonly host: string;
  readonly pid: number;
  readonly token: string;
  readonly acquiredMs: number;
  readonly expiresMs: number;
}

/** The object the lease lives in, with the conditional writes the backend can offer. */
export interface LeaseStore {
  readonly location: string;
  read(): Promise<{ body: Buffer; etag: string } | null>;
  /** Write `body` if there is no object (false: someone else created it first). */
  create(body: Buffer): Promise<boolean>;
  /** Write `body` if the object still has `etag` (false: it changed). */
  swap(body: Buffer, etag: string): Promise<boolean>;
  remove(): Promise<void>;
}

export interface LeaseOwner {
  readonly applianceId: string;
  readonly host: string;
  readonly ttlMs: number;
}

function parse(body: Buffer): LeaseRecord | null {
  try {
    const r = JSON.parse(body.toString('utf8')) as Partial<Record<keyof LeaseRecord, unknown>> | null;
    if (typeof r !== 'object' || r === null || typeof r.applianceId !== 'string' || r.applianceId === '' || typeof r.token !== 'string') return null;
    // An expiry Date can represent (±8.64e15 ms); anything else is damage.
    if (typeof r.expiresMs !== 'number' || !Number.isSafeInteger(r.expiresMs) || Math.abs(r.expiresMs) > 8.64e15) return null;
    return {
      applianceId: r.applianceId, token: r.token, expiresMs: r.expiresMs,
      host: typeof r.host === 'string' ? r.host : '?',
      pid: typeof r.pid === 'number' && Number.isSafeInteger(r.pid) ? r.pid : 0,
      acquiredMs: typeof r.acquiredMs === 'number' ? r.acquiredMs : 0,
    };
  } catch {
    return null; // a damaged lease is treated as expired
  }
}

export class WriterLease {
  readonly #store: LeaseStore;
  readonly #owner: LeaseOwner;
  readonly #token = randomUUID();
  #timer: NodeJS.Timeout | null = null;
  #lost: LeaseRecord | null = null;
  /** When the lease was last written by us: past that + ttl it may have expired and been taken. */
  #writtenMs = 0;
  #released = false;

  private constructor(store: LeaseStore, owner: LeaseOwner) {
    this.#store = store;
    this.#owner = owner;
  }

  /** Take the lease (or throw LEASE_HELD) and start renewing it. */
  static async take(store: LeaseStore, owner: LeaseOwner): Promise<WriterLease> {
    const lease = new WriterLease(store, owner);
    await lease.#acquire();
    lease.#timer = setInterval(() => { void lease.renew().catch(() => {}); }, Math.max(1000, Math.floor(owner.ttlMs / 3)));
    lease.#timer.unref();
    return lease;
  }

  #record(): Buffer {
    const now = Date.now();
    const r: LeaseRecord = { applianceId: this.#owner.applianceId, host: this.#owner.host, pid: process.pid, token: this.#token, acquiredMs: now, expiresMs: now + this.#owner.ttlMs };
    return Buffer.from(`${JSON.stringify(r, null, 2)}\n`);
  }

  #held(holder: LeaseRecord): SvError {
    return new SvError('SV_ERR_BACKEND_LEASE_HELD', `${this.#store.location} is being written by appliance ${holder.applianceId} on ${holder.host} (pid ${holder.pid}); its lease expires ${new Date(holder.expiresMs).toISOString()}. Open it read-only (readOnly=1) to list and restore, or wait for the lease to expire`, {
      holder: holder.applianceId, host: holder.host, pid: holder.pid, expires: new Date(holder.expiresMs).toISOString(),
    });
  }

  async #acquire(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.#store.read();
      const rec = cur ? parse(cur.body) : null;
      if (rec && rec.applianceId !== this.#owner.applianceId && rec.expiresMs > Date.now()) throw this.#held(rec);
      const won = cur ? await this.#store.swap(this.#record(), cur.etag) : await this.#store.create(this.#record());
      if (!won) continue; // someone wrote in between: look again
      const check = await this.#store.read();
      const mine = check ? parse(check.body) : null;
      if (mine?.token === this.#token) { this.#writtenMs = Date.now(); return; }
      if (mine && mine.applianceId !== this.#owner.applianceId) throw this.#held(mine);
    }
    throw new SvError('SV_ERR_BACKEND_LEASE_HELD', `${this.#store.location}: the writer lease kept changing while it was being taken; another writer is starting`, {});
  }

  /** Push the expiry forward; marks the lease lost if another appliance took it. */
  async renew(): Promise<void> {
    if (this.#released || this.#lost) return;
    const cur = await this.#store.read();
    const rec = cur ? parse(cur.body) : null;
    if (rec && rec.token !== this.#token && rec.applianceId !== this.#owner.applianceId) {
      this.#lost = rec;
      return;
    }
    const at = Date.now();
    const ok = cur ? await this.#store.swap(this.#record(), cur.etag) : await this.#store.create(this.#record());
    if (ok) this.#writtenMs = at;
  }

  /** Throws LEASE_LOST once another appliance has taken the lease, or when renewals failed for a whole ttl. */
  check(): void {
    if (!this.#lost && Date.now() - this.#writtenMs > this.#owner.ttlMs) {
      throw new SvError('SV_ERR_BACKEND_LEASE_LOST', `${this.#store.location}: the writer lease could not be renewed for ${Math.round(this.#owner.ttlMs / 1000)} s and may have been taken; this appliance stopped writing (open the store again)`, {});
    }
    if (!this.#lost) return;
    throw new SvError('SV_ERR_BACKEND_LEASE_LOST', `${this.#store.location}: appliance ${this.#lost.applianceId} on ${this.#lost.host} took over the writer lease; this appliance stopped writing`, {
      holder: this.#lost.applianceId, host: this.#lost.host,
    });
  }

  /** Stop renewing and remove the lease if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    if (this.#timer) clearInterval(this.#timer);
    const cur = await this.#store.read().catch(() => null);
    if (cur && parse(cur.body)?.token === this.#token) await this.#store.remove().catch(() => {});
  }
}
