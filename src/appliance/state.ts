/**
 * The appliance state database: durable JSON documents in the state folder (see durable.ts).
 *
 * Layout: `<stateDir>/{groups,sources,jobs,tokens,points,agents,pairings,inventory,identity,owner-releases}.json`, each a JSON array, scheduler.json (last tick) and store.json (last full verify); `appliance.lock` holds
 * the pid of the process owning the folder.
 * Invariants: every change is saved durably before the API answers it; job records are saved at every
 * transition (progress in between is memory only). One process owns the folder: `open` refuses when the pid
 * in appliance.lock is alive, and takes over a lock left by a dead process (crash, kill -9).
 */
import { readFileSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SvError } from '../errors/index.js';
import { JsonDocument } from './durable.js';
import type { AgentRecord, HostInventory, PairingRecord } from './agents/model.js';
import type { DataSource, Job, PointNote, ProtectionGroup, StoreNote, TokenRecord } from './model.js';
import type { PendingRelease } from './ownership.js';
import type { SchedulerState } from './scheduler.js';

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** State folders opened by this process (a pid lock cannot tell two owners in one process apart). */
const OPEN = new Set<string>();

export class StateDb {
  readonly dir: string;
  readonly groups: JsonDocument<ProtectionGroup[]>;
  readonly sources: JsonDocument<DataSource[]>;
  readonly jobs: JsonDocument<Job[]>;
  readonly tokens: JsonDocument<TokenRecord[]>;
  readonly points: JsonDocument<PointNote[]>;
  readonly scheduler: JsonDocument<SchedulerState>;
  readonly store: JsonDocument<StoreNote>;
  readonly agents: JsonDocument<AgentRecord[]>;
  readonly pairings: JsonDocument<PairingRecord[]>;
  readonly inventory: JsonDocument<HostInventory[]>;
  /** Who this appliance is (made at first start): the id VM ownership records name. */
  readonly identity: JsonDocument<{ id?: string; name?: string; createdAt?: string }>;
  /** VM ownership releases no host could take yet (ownership.ts): retried when a host reporting the VM connects. */
  readonly ownerReleases: JsonDocument<PendingRelease[]>;
  #lockPath: string;
  #locked = false;

  private constructor(dir: string) {
    this.dir = dir;
    this.#lockPath = join(dir, 'appliance.lock');
    this.groups = new JsonDocument(dir, 'groups', () => []);
    this.sources = new JsonDocument(dir, 'sources', () => []);
    this.jobs = new JsonDocument(dir, 'jobs', () => []);
    this.tokens = new JsonDocument(dir, 'tokens', () => []);
    this.points = new JsonDocument(dir, 'points', () => []);
    this.scheduler = new JsonDocument(dir, 'scheduler', () => ({}));
    this.store = new JsonDocument(dir, 'store', () => ({}));
    this.agents = new JsonDocument(dir, 'agents', () => []);
    this.pairings = new JsonDocument(dir, 'pairings', () => []);
    this.inventory = new JsonDocument(dir, 'inventory', () => []);
    this.identity = new JsonDocument(dir, 'identity', () => ({}));
    this.ownerReleases = new JsonDocument(dir, 'owner-releases', () => []);
  }

  /** Open (creating) the state folder and take its lock. */
  static open(dir: string): StateDb {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockPath = join(dir, 'appliance.lock');
    let owner = NaN;
    try {
      owner = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
    } catch {
      /* no lock: free */
    }
    if (OPEN.has(resolve(dir))) {
      throw new SvError('SV_ERR_APPLIANCE_LOCKED', `this process already runs an appliance on ${dir}`, { pid: process.pid, path: lockPath });
    }
    if (pidAlive(owner)) {
      throw new SvError('SV_ERR_APPLIANCE_LOCKED', `another appliance (pid ${owner}) runs on ${dir}; stop it first`, { pid: owner, path: lockPath });
    }
    const db = new StateDb(dir);
    writeFileSync(lockPath, `${process.pid}\n`, { mode: 0o600 });
    db.#locked = true;
    OPEN.add(resolve(dir));
    return db;
  }

  async flush(): Promise<void> {
    await Promise.all([this.groups.flush(), this.sources.flush(), this.jobs.flush(), this.tokens.flush(), this.points.flush(), this.scheduler.flush(), this.store.flush(), this.agents.flush(), this.pairings.flush(), this.inventory.flush(), this.identity.flush()]);
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.#locked) {
      this.#locked = false;
      OPEN.delete(resolve(this.dir));
      try {
        unlinkSync(this.#lockPath);
      } catch {
        /* already gone */
      }
    }
  }
}
