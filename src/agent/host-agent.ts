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
    // Ranges, answers and frames of 1-16 MiB come and go all the time: return them to the system when freed,
    // so that the agent's resident memory follows what it holds.
    setMmapThreshold(AGENT_MMAP_THRESHOLD);
 * - Inventory: polled every `pollMs`; pushed on connect and whenever it changed. The appliance answers a push
 *   with its id and name: the agent keeps them with the pairing (a later different id is refused for
 *   ownership: that is not the appliance it paired with).
 * - Several appliances: one HostAgent per pairing (src/agent/agent-set.ts), each with its own channel,
 *   credential, pinned certificate and method handlers; they share the driver.
 * - Ownership (src/agent/owner.ts): `owner.claim` / `owner.release` for the appliance of this connection;
 *   `view.open` of a VM another appliance owns is refused (SV_ERR_AGENT_VM_OWNED), and of a VM nobody owns
 *   claims it first (so an appliance that protected a VM before ownership records, or whose claim at
 *   `sources add` could not reach the host, owns it from its first backup); `restore.open` beside the disks
 *   of a VM another appliance owns is refused (a whole-VM restore `into` an import folder is a new VM: not).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { SvError, hasCode, toWire } from '../errors/index.js';
import type { HypervisorDriver, VmInfo } from '../hypervisor/driver.js';
import { agentDispatcher } from './channel/agent-dispatch.js';
import { parsePairingCode, pairingKey, pairingProof } from './channel/binding.js';
import { openChannel, openTransport, postJson } from './channel/dial.js';
import { DEFAULT_MAX_FRAME } from './channel/frame.js';
import { Peer } from './channel/peer.js';
import { credentialFor, loadCredential, saveCredential, type AgentCredential } from './credential.js';
import { buildInventory } from './inventory.js';
import { setMmapThreshold } from '../native/index.js';
import { claimOwner, ownedError, readOwner, releaseOwner, type ApplianceRef } from './owner.js';
import type { AgentHandlers, AgentMethods, InventoryPushAnswer, InventoryReport } from './rpc.js';

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
  /** Clean the driver's leftovers at start (default true; false for every agent of a set but the first). */
  readonly cleanupLeftovers?: boolean;
  /** A file server's agent (`--file-server`): the shares it serves, reported with the host. */
  readonly fileServer?: { readonly shares: readonly string[] };
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
  /** The appliance of this pairing, as it named itself (undefined: not yet known, or it does not say). */
  #appliance: ApplianceRef | undefined;
  /** It answered with an id other than the one kept with the pairing: no ownership operations for it. */
  #idMismatch: string | undefined;

  constructor(opts: HostAgentOptions) {
    super();
    this.#o = opts;
  }

  get agentId(): string | undefined {
    return this.#credential?.agentId;
  }

  /** The appliance's id and name, once known. */
  get appliance(): ApplianceRef | undefined {
    return this.#appliance;
  }

  get connected(): boolean {
    return this.#peer !== undefined && !this.#peer.closed;
  }

  /** Pair when needed (throws the pairing's coded error), clean the driver's leftovers, then run the connection loop in the background. */
  async start(): Promise<void> {
    // Ranges, answers and frames of 1-16 MiB come and go all the time: return them to the system when freed,
    // so that the agent's resident memory follows what it holds.
    setMmapThreshold(AGENT_MMAP_THRESHOLD);
    const stored = await credentialFor(this.#o.dataDir, this.#o.appliance.origin);
    if (stored) {
      this.#credential = stored;
      if (stored.applianceId) this.#appliance = { id: stored.applianceId, name: stored.applianceName ?? '' };
      if (this.#o.pairCode) this.#o.log.info({ agentId: stored.agentId }, 'already paired with this appliance: the stored credential is used, the pairing code is not');
    } else if (this.#o.pairCode) {
      this.#credential = await this.#pair(this.#o.pairCode);
    } else {
      const first = await loadCredential(this.#o.dataDir);
      throw new SvError('SV_ERR_AGENT_CREDENTIAL', first
        ? `the agent in ${this.#o.dataDir} is not paired with ${this.#o.appliance.origin} (it is with ${first.appliance}): give --pair CODE to pair with this one too`
        : `no credential in ${this.#o.dataDir}: give --pair CODE (from \`shadowvault agents pair\` on the appliance)`, { dataDir: this.#o.dataDir });
    }
    if (this.#o.cleanupLeftovers !== false) await this.#cleanup();
    void this.#loop();
  }

  async #cleanup(): Promise<void> {
    try {
      const cleaned = await this.#o.driver.cleanupLeftovers();
      if (cleaned.removed.length || cleaned.errors.length) this.#o.log.warn({ removed: cleaned.removed, errors: cleaned.errors }, 'removed leftovers of an earlier run');
    } catch (err) {
      this.#o.log.error({ err: toWire(err) }, 'cleaning leftovers of an earlier run failed');
    }
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
    const handlers: Partial<AgentHandlers> = { ...this.#o.handlers, ...this.#ownerHandlers(), 'inventory.get': async () => ({ result: await this.#inventory() }) };
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
    return buildInventory(this.#o.driver, { name: this.#o.name, cluster: this.#o.cluster, agentVersion: this.#o.version, ...(this.#o.fileServer ? { fileServer: this.#o.fileServer } : {}) }, { ownerOf: (vm) => readOwner(vm) });
  }

  /** The appliance's answer to a push: learn (and keep with the pairing) who it is. */
  async #learn(answer: InventoryPushAnswer): Promise<void> {
    const a = answer.appliance;
    if (!a || typeof a.id !== 'string' || typeof a.name !== 'string' || !a.id || a.id.length > 128 || a.name.length > 255) return;
    const c = this.#credential!;
    if (c.applianceId && c.applianceId !== a.id) {
      if (this.#idMismatch !== a.id) this.#o.log.error({ paired: c.applianceId, now: a.id, appliance: this.#o.appliance.origin }, 'the appliance names itself with another id than at pairing: ownership operations for it are refused (pair again if it was reinstalled)');
      this.#idMismatch = a.id;
      return;
    }
    this.#idMismatch = undefined;
    this.#appliance = { id: a.id, name: a.name };
    if (c.applianceId !== a.id || c.applianceName !== a.name) {
      this.#credential = { ...c, applianceId: a.id, applianceName: a.name };
      await saveCredential(this.#o.dataDir, this.#credential);
    }
  }

  /** Who the appliance of this connection is: known, or asked now with a push. Undefined: it does not say. */
  async #identity(): Promise<ApplianceRef | undefined> {
    if (this.#idMismatch) throw new SvError('SV_ERR_AGENT_REFUSED', `the appliance at ${this.#o.appliance.origin} names itself ${this.#idMismatch}, not ${this.#credential?.applianceId} as when it was paired: ownership operations are refused`, { appliance: this.#o.appliance.origin });
    if (this.#appliance?.name) return this.#appliance;
    const peer = this.#peer;
    if (peer && !peer.closed) {
      const ans = await peer.call('inventory.push', { inventory: await this.#inventory() } as unknown as Record<string, unknown>);
      await this.#learn(ans.result as InventoryPushAnswer);
    }
    return this.#appliance;
  }

  async #vm(vmId: string): Promise<Pick<VmInfo, 'id' | 'disks'>> {
    const quick = await this.#o.driver.vmDisks?.(vmId);
    if (quick) return quick;
    const vm = (await this.#o.driver.listVms()).find((v) => v.id === vmId);
    if (!vm) throw new SvError('SV_ERR_AGENT_VM_NOT_HOSTED', `VM ${vmId} is not on host "${this.#o.name}"`, { vmId });
    return vm;
  }

  /** owner.claim / owner.release, and the ownership check in front of view.open and restore.open. */
  #ownerHandlers(): Partial<AgentHandlers> {
    const inner = this.#o.handlers ?? {};
    const need = async (what: string): Promise<ApplianceRef> => {
      const me = await this.#identity();
      if (!me) throw new SvError('SV_ERR_AGENT_UNKNOWN_METHOD', `${what}: the appliance at ${this.#o.appliance.origin} did not say who it is (too old for ownership records)`, { method: what });
      return me;
    };
    const out: Partial<AgentHandlers> = {
      'owner.claim': async (p) => {
        const me = await need('owner.claim');
        const got = await claimOwner(await this.#vm(p.vmId), me, this.#o.name, { takeOver: p.takeOver === true });
        if (got.previous) this.#o.log.warn({ vmId: p.vmId, from: got.previous.appliance, to: me }, 'VM taken over by an admin of another appliance');
        else this.#o.log.info({ vmId: p.vmId, appliance: me }, 'VM ownership claimed');
        void this.#pushIfChanged();
        return { result: { owner: got.record, ...(got.previous ? { previous: got.previous } : {}) } };
      },
      'owner.release': async (p) => {
        const me = await need('owner.release');
        const released = await releaseOwner(await this.#vm(p.vmId), me);
        if (released) this.#o.log.info({ vmId: p.vmId, appliance: me }, 'VM ownership released');
        void this.#pushIfChanged();
        return { result: { released } };
      },
    };
    const open = inner['view.open'];
    if (open) {
      out['view.open'] = async (p, payload, signal) => {
        const me = await this.#identity();
        if (me) {
          const vm = await this.#vm(p.vmId);
          const owner = await readOwner(vm);
          if (owner && owner.appliance.id !== me.id) throw ownedError(vm.id, owner, me);
          if (!owner) {
            try {
              await claimOwner(vm, me, this.#o.name);
              void this.#pushIfChanged();
            } catch (err) {
              if (hasCode(err, 'SV_ERR_AGENT_VM_OWNED')) throw err;
              this.#o.log.warn({ err: toWire(err), vmId: vm.id }, 'cannot write the VM ownership record: the backup goes on without it');
            }
          }
        }
        return open(p, payload, signal);
      };
    }
    const restore = inner['restore.open'];
    if (restore) {
      out['restore.open'] = async (p, payload, signal) => {
        // a disk written beside the VM's own disks; a whole-VM restore (`into` an import folder) makes a new VM
        const me = p.into === undefined ? await this.#identity() : undefined;
        if (me) {
          const vm = (await this.#o.driver.listVms()).find((v) => v.id === p.vmId);
          const owner = vm ? await readOwner(vm) : undefined;
          if (owner && owner.appliance.id !== me.id) throw ownedError(p.vmId, owner, me);
        }
        return restore(p, payload, signal);
      };
    }
    return out;
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
      const ans = await peer.call('inventory.push', params as unknown as Record<string, unknown>);
      this.#lastPushed = text;
      await this.#learn(ans.result as InventoryPushAnswer);
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
