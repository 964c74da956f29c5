/**
 * QMP client: one connection to a VM's monitor socket (`-qmp unix:PATH,server=on,wait=off`).
 *
 * Protocol: read the greeting, send `qmp_capabilities`, then commands as {"execute", "arguments", "id"}.
 * Every command carries a fresh id ("sv-<n>"), so many may be in flight; each reply is matched to its
 * command by id. Asynchronous events (STOP, RESUME, JOB_STATUS_CHANGE, BLOCK_JOB_COMPLETED, SHUTDOWN, ...)
 * go to `onEvent` listeners and to `waitForEvent` waiters.
 *
 * Invariants: every `execute` settles exactly once: with the reply, SV_ERR_QEMU_COMMAND_FAILED (QMP's class
 * and desc in details), SV_ERR_QEMU_TIMEOUT (its own timer; a late reply is then ignored), or the error
 * that ended the connection (SV_ERR_QEMU_PROTOCOL for a peer that breaks the protocol, SV_ERR_QEMU_GONE
 * when it closes). A protocol error ends the connection: after it nothing from that peer is trusted.
 * Lines are capped (`maxLineBytes`), so a hostile peer cannot grow our buffers.
 */
import { SvError } from '../errors/index.js';
import { LineSocket } from './line-socket.js';
import { commandFailed, parseQmpLine, type QmpEvent, type QmpGreeting, type QmpMessage } from './qmp-protocol.js';

export interface QmpOptions {
  connectTimeoutMs?: number;
  /** Default timeout of each command; `execute` may override it. */
  commandTimeoutMs?: number;
  maxLineBytes?: number;
}

const DEFAULTS = { connectTimeoutMs: 5000, commandTimeoutMs: 30_000, maxLineBytes: 4 << 20 };

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: SvError) => void;
  timer: NodeJS.Timeout;
}

export type QmpEventListener = (event: QmpEvent) => void;

export class QmpClient {
  readonly greeting: QmpGreeting;
  readonly #line: LineSocket;
  readonly #commandTimeoutMs: number;
  readonly #pending = new Map<string, Pending>();
  readonly #listeners = new Set<QmpEventListener>();
  #nextId = 1;
  #ended: SvError | undefined;

  private constructor(line: LineSocket, greeting: QmpGreeting, commandTimeoutMs: number) {
    this.#line = line;
    this.greeting = greeting;
    this.#commandTimeoutMs = commandTimeoutMs;
    line.onLine((text) => this.#message(parseQmpLine(line.peer, text)));
    line.onClose((err) => this.#end(err));
  }

  /** Connect, read the greeting and leave capabilities negotiation mode. */
  static async connect(path: string, options: QmpOptions = {}): Promise<QmpClient> {
    const opts = { ...DEFAULTS, ...options };
    const peer = `QMP ${path}`;
    const line = await LineSocket.connect(path, { peer, connectTimeoutMs: opts.connectTimeoutMs, maxLineBytes: opts.maxLineBytes });
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => line.close(new SvError('SV_ERR_QEMU_CONNECT', `${peer}: no greeting within ${opts.connectTimeoutMs} ms`, { peer })), opts.connectTimeoutMs);
      line.onClose((err) => {
        clearTimeout(timer);
        reject(err ?? new SvError('SV_ERR_QEMU_CONNECT', `${peer}: closed before its greeting (another client connected?)`, { peer }));
      });
      line.onLine((text) => {
        const msg = parseQmpLine(peer, text);
        if (msg.kind !== 'greeting') throw new SvError('SV_ERR_QEMU_PROTOCOL', `${peer}: expected the QMP greeting first, found a ${msg.kind}`, { peer, found: msg.kind });
        clearTimeout(timer);
        resolve(msg);
      });
    });
    const client = new QmpClient(line, greeting, opts.commandTimeoutMs);
    await client.execute('qmp_capabilities');
    return client;
  }

  /** The error that ended the connection, if it has ended. */
  get ended(): SvError | undefined {
    return this.#ended;
  }

  /** Run one command and resolve with its "return" value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.#ended) return Promise.reject(this.#ended);
    const id = `sv-${this.#nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.#commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SvError('SV_ERR_QEMU_TIMEOUT', `${this.#line.peer}: ${command} got no answer within ${timeoutMs} ms`, { peer: this.#line.peer, command, timeoutMs }));
      }, timeoutMs);
      this.#pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.#line.write(`${JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })}\n`);
    });
  }

  /** Listen to every event; returns a function that removes the listener. */
  onEvent(listener: QmpEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The next event named `name` for which `match` holds (events before this call are not seen). Rejects
   * with SV_ERR_QEMU_TIMEOUT after `timeoutMs`, or with the connection's end.
   */
  waitForEvent(name: string, match: (data: Record<string, unknown>) => boolean = () => true, timeoutMs = this.#commandTimeoutMs): Promise<QmpEvent> {
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener: QmpEventListener = (event) => {
        if (event.event === name && match(event.data)) {
          done();
          resolve(event);
        } else if (event.event === ENDED && this.#ended) {
          done();
          reject(this.#ended);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new SvError('SV_ERR_QEMU_TIMEOUT', `${this.#line.peer}: no ${name} event within ${timeoutMs} ms`, { peer: this.#line.peer, event: name, timeoutMs }));
      }, timeoutMs);
      this.#listeners.add(listener);
    });
  }

  /** Close the connection; pending commands reject with SV_ERR_QEMU_GONE. */
  close(): void {
    this.#line.close(new SvError('SV_ERR_QEMU_GONE', `${this.#line.peer}: the client closed the connection`, { peer: this.#line.peer }));
  }

  #message(msg: QmpMessage): void {
    if (msg.kind === 'event') {
      for (const listener of [...this.#listeners]) listener(msg);
      return;
    }
    if (msg.kind === 'greeting') throw new SvError('SV_ERR_QEMU_PROTOCOL', `${this.#line.peer}: a second greeting`, { peer: this.#line.peer });
    const pending = typeof msg.id === 'string' ? this.#pending.get(msg.id) : undefined;
    if (!pending) {
      // A reply to a command that timed out is expected; anything else is a peer we cannot follow.
      if (typeof msg.id === 'string' && /^sv-\d+$/u.test(msg.id) && Number(msg.id.slice(3)) < this.#nextId) return;
      throw new SvError('SV_ERR_QEMU_PROTOCOL', `${this.#line.peer}: a reply with unknown id ${JSON.stringify(msg.id)}`, { peer: this.#line.peer, id: String(msg.id) });
    }
    this.#pending.delete(msg.id as string);
    clearTimeout(pending.timer);
    if (msg.kind === 'return') pending.resolve(msg.value);
    else pending.reject(commandFailed(this.#line.peer, pending.command, msg));
  }

  #end(err?: SvError): void {
    this.#ended = err ?? new SvError('SV_ERR_QEMU_GONE', `${this.#line.peer}: QEMU closed the connection`, { peer: this.#line.peer });
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.#ended);
    }
    this.#pending.clear();
    const end: QmpEvent = { kind: 'event', event: ENDED, data: {}, timestampUs: Date.now() * 1000 };
    for (const listener of [...this.#listeners]) listener(end);
  }
}

/** A pseudo-event delivered to listeners when the connection ends (never sent by QEMU: lower case). */
export const ENDED = 'sv-connection-ended';
