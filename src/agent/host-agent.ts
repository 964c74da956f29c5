/**
 * The host agent: pairs once, then keeps one control channel to the appliance open for as long as it runs.
 *
 * - Pairing (no credential in the data dir, or one for another appliance, and a code given): the TLS
 *   handshake first, then POST /api/v1/agents/pair with the code's id and the proof bound to the certificate
 *   seen (see channel/binding.ts); the credential and the pinned fingerprint are saved 0600.
 * - Connection loop: open the transport (the pin is checked before the credential leaves), upgrade to the
 *   WebSocket, push the inventory, serve calls (channel/agent-dispatch.ts) until the connection ends; then
 *   again after a backoff (doubling from `backoffMs.min` to `.max`, with jitter; reset by a connection that
 *   lasted). A refused credential (revoked) ends the agent: it has to be paired again.
 * - Inventory: polled every `pollMs`; pushed on connect and whenever it changed.
 * - Memory: start() fixes glibc's mmap threshold at 1 MiB (native setMmapThreshold): the big buffers of range
 *   calls go back to the system when freed instead of keeping the process at its peak.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { SvError, hasCode, toWire } from '../errors/index.js';
import type { HypervisorDriver } from '../hypervisor/driver.js';
import { agentDispatcher } from './channel/agent-dispatch.js';
import { parsePairingCode, pairingKey, pairingProof } from './channel/binding.js';
import { openChannel, openTransport, postJson } from './channel/dial.js';
import { DEFAULT_MAX_FRAME } from './channel/frame.js';
import { Peer } from './channel/peer.js';
import { loadCredential, saveCredential, type AgentCredential } from './credential.js';
import { buildInventory } from './inventory.js';
import { setMmapThreshold } from '../native/index.js';
import type { AgentHandlers, AgentMethods, InventoryReport } from './rpc.js';

/** Allocations from this size up are mapped and unmapped on their own in the agent (see start()). */
export const AGENT_MMAP_THRESHOLD = 1024 * 1024;

export interface HostAgentOptions {
  readonly appliance: URL;
  readonly dataDir: string;
  readonly pairCode?: string;
  readonly name: string;
  readonly cluster: string | null;
  readonly version: string;
  readonly driver: HypervisorDriver;
  /** The methods (src/agent/methods/); `inventory.get` is provided here. */
  readonly handlers?: Partial<AgentHandlers>;
  readonly log: Logger;
  readonly pollMs?: number;
  readonly keepaliveMs?: number;
  readonly backoffMs?: { readonly min: number; readonly max: number };
  readonly maxFrame?: number;
}

/** What the appliance answers to a pairing. */
export interface PairAnswer {
  readonly agentId: string;
  readonly credential: string;
}

export class HostAgent extends EventEmitter {
  readonly #o: HostAgentOptions;
  #credential: AgentCredential | undefined;
  #peer: Peer | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #lastPushed = '';
  #pushing = false;

  constructor(opts: HostAgentOptions) {
    super();
    this.#o = opts;
  }

  get agentId(): string | undefined {
    return this.#credential?.agentId;
  }

  get connected(): boolean {
    return this.#peer !== undefined && !this.#peer.closed;
  }

  /** Pair when needed (throws the pairing's coded error), clean the driver's leftovers, then run the connection loop in the background. */
  async start(): Promise<void> {
    // Ranges, answers and frames of 1-16 MiB come and go all the time: return them to the system when freed,
    // so that the agent's resident memory follows what it holds.
    setMmapThreshold(AGENT_MMAP_THRESHOLD);
    const stored = await loadCredential(this.#o.dataDir);
    if (stored && stored.appliance === this.#o.appliance.origin) {
      this.#credential = stored;
      if (this.#o.pairCode) this.#o.log.info({ agentId: stored.agentId }, 'already paired with this appliance: the stored credential is used, the pairing code is not');
    } else if (this.#o.pairCode) {
      this.#credential = await this.#pair(this.#o.pairCode);
    } else {
      throw new SvError('SV_ERR_AGENT_CREDENTIAL', stored
        ? `the credential in ${this.#o.dataDir} is for ${stored.appliance}, not ${this.#o.appliance.origin}: give --pair CODE to pair with this one`
        : `no credential in ${this.#o.dataDir}: give --pair CODE (from \`shadowvault agents pair\` on the appliance)`, { dataDir: this.#o.dataDir });
    }
    try {
      const cleaned = await this.#o.driver.cleanupLeftovers();
      if (cleaned.removed.length || cleaned.errors.length) this.#o.log.warn({ removed: cleaned.removed, errors: cleaned.errors }, 'removed leftovers of an earlier run');
    } catch (err) {
      this.#o.log.error({ err: toWire(err) }, 'cleaning leftovers of an earlier run failed');
    }
    void this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#peer?.close();
    this.#wake?.();
  }

  async #pair(code: string): Promise<AgentCredential> {
    const { id, secret } = parsePairingCode(code);
    const url = this.#o.appliance;
    const t = await openTransport(url, undefined);
    let answer: PairAnswer;
    try {
      answer = await postJson<PairAnswer>(url, t, '/api/v1/agents/pair', {
        pairingId: id,
        proof: pairingProof(pairingKey(secret), t.fingerprint),
        name: this.#o.name,
        cluster: this.#o.cluster,
        agentVersion: this.#o.version,
        hypervisor: { name: this.#o.driver.hypervisor.name, version: this.#o.driver.hypervisor.version },
      });
    } finally {
      t.socket.destroy();
    }
    const c: AgentCredential = { version: 1, appliance: url.origin, agentId: answer.agentId, credential: answer.credential, fingerprint: t.fingerprint, pairedAt: new Date().toISOString() };
    await saveCredential(this.#o.dataDir, c);
    this.#o.log.info({ agentId: c.agentId, fingerprint: c.fingerprint }, 'paired with the appliance; credential saved');
    this.emit('paired', c.agentId);
    return c;
  }

  async #loop(): Promise<void> {
    const backoff = this.#o.backoffMs ?? { min: 500, max: 15_000 };
    let delay = backoff.min;
    while (!this.#stopped) {
      const began = Date.now();
      try {
        await this.#session();
      } catch (err) {
        if (hasCode(err, 'SV_ERR_AGENT_REFUSED')) {
          this.#o.log.error({ err: toWire(err) }, 'the appliance refused this agent (revoked?): pair again');
          this.#stopped = true;
          this.emit('refused', err);
          return;
        }
        this.#o.log.warn({ err: toWire(err), retryInMs: delay }, 'agent channel failed');
        this.emit('failed', err);
      }
      if (this.#stopped) return;
      if (Date.now() - began > 30_000) delay = backoff.min;
      const wait = Math.round(delay * (0.75 + Math.random() * 0.5));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      delay = Math.min(backoff.max, delay * 2);
    }
  }

  /** One connection: resolves when it ends (with the reason logged). */
  async #session(): Promise<void> {
    const c = this.#credential!;
    const t = await openTransport(this.#o.appliance, c.fingerprint);
    const ws = await openChannel(this.#o.appliance, t, c.credential, this.#o.maxFrame ?? DEFAULT_MAX_FRAME);
    if (this.#stopped) {
      ws.close(1000, 'agent stopping'); // stop() came while this connection was being made
      return;
    }
    const handlers: Partial<AgentHandlers> = { ...this.#o.handlers, 'inventory.get': async () => ({ result: await this.#inventory() }) };
    const ended = new Promise<SvError>((resolve) => {
      this.#peer = new Peer(ws, {
        dispatcher: agentDispatcher(handlers),
        keepaliveMs: this.#o.keepaliveMs,
        maxFrame: this.#o.maxFrame,
        onNotice: (error, from) => this.#o.log.warn({ error, from }, 'agent channel notice'),
        onClose: resolve,
      });
    });
    this.#lastPushed = '';
    this.#o.log.info({ agentId: c.agentId, appliance: this.#o.appliance.origin }, 'agent connected');
    this.emit('connected');
    void this.#pushIfChanged();
    this.#pollTimer = setInterval(() => void this.#pushIfChanged(), this.#o.pollMs ?? 5000);
    const reason = await ended;
    clearInterval(this.#pollTimer);
    this.#peer = undefined;
    this.#o.log.warn({ reason: reason.toWire() }, 'agent disconnected');
    this.emit('disconnected', reason);
  }

  #inventory(): Promise<InventoryReport> {
    return buildInventory(this.#o.driver, { name: this.#o.name, cluster: this.#o.cluster, agentVersion: this.#o.version });
  }

  async #pushIfChanged(): Promise<void> {
    const peer = this.#peer;
    if (!peer || this.#pushing) return;
    this.#pushing = true;
    try {
      const inv = await this.#inventory();
      const text = JSON.stringify(inv);
      if (text === this.#lastPushed || peer.closed) return;
      const params: InventoryPush = { inventory: inv };
      await peer.call('inventory.push', params as unknown as Record<string, unknown>);
      this.#lastPushed = text;
      this.emit('inventory', inv);
    } catch (err) {
      this.#o.log.warn({ err: toWire(err) }, 'inventory push failed');
      this.emit('push-failed', err);
    } finally {
      this.#pushing = false;
    }
  }
}

/** Agent → appliance: the one call the agent makes. */
export interface InventoryPush {
  readonly inventory: AgentMethods['inventory.get']['result'];
}
