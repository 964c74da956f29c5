/**
 * One end of an agent control channel over a WebSocket: both the appliance and the agent hold a Peer.
 *
 * - `call()` sends a call frame with a fresh id and resolves with the answer; many calls may be in flight.
 *   An AbortSignal cancels: the call rejects at once with SV_ERR_CORE_CANCELLED and a `cancel` frame tells
 *   the peer to abort its handler. When the connection ends, every pending call rejects with
 *   SV_ERR_AGENT_DISCONNECTED (or the reason the connection was closed for).
 * - Incoming calls go to the Dispatcher; its answer (or coded error) is sent back under the call's id.
 *   Unknown methods, malformed frames, unknown ids get coded errors (as an `error` frame when there is an id
 *   to answer, else a `notice`) and the connection stays up; only an over-large frame closes it (the
 *   WebSocket cannot skip it).
 * - Keepalive: a WebSocket ping every `keepaliveMs`; no pong by the next one closes the connection
 *   (SV_ERR_AGENT_KEEPALIVE).
 * - `bytes` counts every frame both ways (header + payload).
 */
import type { WebSocket } from 'ws';
import { SvError, fromWire, hasCode, toWire, type WireError } from '../../errors/index.js';
import { DEFAULT_MAX_FRAME, decodeFrame, encodeFrame, type FrameHeader } from './frame.js';

export interface Answer {
  readonly result: Record<string, unknown>;
  readonly payload?: Uint8Array;
  /** Instead of `payload`: its pieces, joined once into the frame. */
  readonly payloadParts?: readonly Uint8Array[];
}

export interface Dispatcher {
  /** Run one incoming call; throw coded errors. Unknown methods: throw SV_ERR_AGENT_UNKNOWN_METHOD. */
  dispatch(method: string, params: Record<string, unknown>, payload: Uint8Array, signal: AbortSignal): Promise<Answer>;
}

export interface PeerOptions {
  readonly dispatcher: Dispatcher;
  readonly maxFrame?: number;
  /** Ping interval; 0 = no keepalive (default 15 s). */
  readonly keepaliveMs?: number;
  /** A coded complaint from the peer or about its frames (logging, tests). */
  readonly onNotice?: (error: WireError, from: 'peer' | 'local') => void;
  readonly onClose?: (reason: SvError) => void;
}

interface Pending {
  resolve(a: Answer): void;
  reject(e: SvError): void;
  cleanup(): void;
}

export class Peer {
  readonly #ws: WebSocket;
  readonly #opts: PeerOptions;
  readonly #maxFrame: number;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #running = new Map<number, AbortController>();
  #closed: SvError | undefined;
  #timer: NodeJS.Timeout | undefined;
  #alive = true;
  readonly bytes = { sent: 0, received: 0 };

  constructor(ws: WebSocket, opts: PeerOptions) {
    this.#ws = ws;
    this.#opts = opts;
    this.#maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on('pong', () => {
      this.#alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.#shutdown(new SvError('SV_ERR_AGENT_FRAME_TOO_LARGE', `the peer sent a frame over the ${this.#maxFrame}-byte limit; connection closed`, { maxFrame: this.#maxFrame }));
      } else {
        this.#shutdown(new SvError('SV_ERR_AGENT_DISCONNECTED', `agent channel error: ${err.message}`, { cause: err.code ?? null }));
      }
    });
    ws.on('close', (code, reason) => this.#shutdown(new SvError('SV_ERR_AGENT_DISCONNECTED', `agent channel closed (${code}${reason.length ? ` ${reason.toString('utf8').slice(0, 120)}` : ''})`, { wsCode: code })));
    const every = opts.keepaliveMs ?? 15_000;
    if (every > 0) {
      this.#timer = setInterval(() => {
        if (!this.#alive) {
          this.close(new SvError('SV_ERR_AGENT_KEEPALIVE', `the peer did not answer a ping within ${every} ms`, { keepaliveMs: every }));
          return;
        }
        this.#alive = false;
        try {
          this.#ws.ping();
        } catch {
          /* closing */
        }
      }, every);
      this.#timer.unref();
    }
  }

  get closed(): SvError | undefined {
    return this.#closed;
  }

  /** Pending outgoing calls (tests, metrics). */
  get inFlight(): number {
    return this.#pending.size;
  }

  call(method: string, params: Record<string, unknown>, payload?: Uint8Array, signal?: AbortSignal): Promise<Answer> {
    if (this.#closed) return Promise.reject(new SvError('SV_ERR_AGENT_DISCONNECTED', `agent channel is closed: ${this.#closed.message}`, { method }));
    if (signal?.aborted) return Promise.reject(new SvError('SV_ERR_CORE_CANCELLED', `agent call ${method} cancelled before it was sent`, { method }));
    const id = this.#nextId++;
    const frame = encodeFrame({ t: 'call', id, method, params }, payload);
    if (frame.length > this.#maxFrame) {
      return Promise.reject(new SvError('SV_ERR_AGENT_FRAME_TOO_LARGE', `agent call ${method}: a ${frame.length}-byte frame is over the ${this.#maxFrame}-byte limit`, { method, bytes: frame.length, maxFrame: this.#maxFrame }));
    }
    return new Promise<Answer>((resolve, reject) => {
      const onAbort = (): void => {
        const p = this.#pending.get(id);
        if (!p) return;
        this.#pending.delete(id);
        p.cleanup();
        this.#send({ t: 'cancel', id });
        reject(new SvError('SV_ERR_CORE_CANCELLED', `agent call ${method} cancelled`, { method, id }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, { resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) });
      this.#sendRaw(frame);
    });
  }

  /** Close the connection; pending calls reject with `reason`. */
  close(reason = new SvError('SV_ERR_AGENT_DISCONNECTED', 'agent channel closed by this side', {})): void {
    this.#shutdown(reason);
    try {
      this.#ws.close(hasCode(reason, 'SV_ERR_AGENT_FRAME_TOO_LARGE') ? 1009 : 1000, reason.code);
    } catch {
      this.#ws.terminate();
    }
    // a peer that does not complete the closing handshake must not hold the socket
    setTimeout(() => this.#ws.terminate(), 2000).unref();
  }

  /** Cut the connection without a closing handshake (tests: a dropped network). */
  terminate(): void {
    this.#ws.terminate();
  }

  #shutdown(reason: SvError): void {
    if (this.#closed) return;
    this.#closed = reason;
    if (this.#timer) clearInterval(this.#timer);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      p.cleanup();
      p.reject(hasCode(reason, 'SV_ERR_AGENT_DISCONNECTED', 'SV_ERR_AGENT_KEEPALIVE', 'SV_ERR_AGENT_FRAME_TOO_LARGE')
        ? new SvError('SV_ERR_AGENT_DISCONNECTED', `agent connection lost during the call: ${reason.message}`, { reason: reason.code }, { cause: reason })
        : reason);
    }
    for (const c of this.#running.values()) c.abort(reason);
    this.#running.clear();
    this.#opts.onClose?.(reason);
  }

  #sendRaw(frame: Buffer): void {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return;
    this.bytes.sent += frame.length;
    this.#ws.send(frame, { binary: true }, () => undefined);
  }

  #send(header: FrameHeader, payload?: Uint8Array): void {
    this.#sendRaw(encodeFrame(header, payload));
  }

  #notice(err: SvError): void {
    this.#opts.onNotice?.(err.toWire(), 'local');
    this.#send({ t: 'notice', error: err.toWire() });
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#closed) return; // closed by this side: nothing more is served or answered
    this.bytes.received += data.length;
    if (!isBinary) {
      this.#notice(new SvError('SV_ERR_AGENT_BAD_FRAME', 'bad agent frame: a text message (frames are binary)', {}));
      return;
    }
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      this.#notice(err as SvError);
      return;
    }
    const h = frame.header;
    switch (h.t) {
      case 'call':
        this.#onCall(h.id, h.method, h.params, frame.payload);
        return;
      case 'result':
      case 'error': {
        const p = this.#pending.get(h.id);
        if (!p) {
          this.#notice(new SvError('SV_ERR_AGENT_UNKNOWN_ID', `agent frame ${h.t} names call id ${h.id}, which is not pending`, { id: h.id }));
          return;
        }
        this.#pending.delete(h.id);
        p.cleanup();
        if (h.t === 'result') p.resolve({ result: h.result, ...(frame.payload.length ? { payload: frame.payload } : {}) });
        else p.reject(fromWire(h.error));
        return;
      }
      case 'cancel': {
        const c = this.#running.get(h.id);
        if (!c) return; // it may have finished just now: not an error
        c.abort(new SvError('SV_ERR_CORE_CANCELLED', 'cancelled by the caller', { id: h.id }));
        return;
      }
      case 'notice':
        this.#opts.onNotice?.(h.error, 'peer');
    }
  }

  #onCall(id: number, method: string, params: Record<string, unknown>, payload: Uint8Array): void {
    if (this.#running.has(id)) {
      this.#notice(new SvError('SV_ERR_AGENT_UNKNOWN_ID', `agent call id ${id} is already running (duplicate id)`, { id, method }));
      return;
    }
    const ctl = new AbortController();
    this.#running.set(id, ctl);
    void (async () => {
      let answer: Answer | undefined;
      let error: WireError | undefined;
      try {
        answer = await this.#opts.dispatcher.dispatch(method, params, payload, ctl.signal);
      } catch (err) {
        error = toWire(err);
      }
      if (this.#running.get(id) !== ctl) return; // connection closed meanwhile
      this.#running.delete(id);
      if (ctl.signal.aborted) return; // the caller gave up; it expects nothing
      if (answer) {
        const frame = encodeFrame({ t: 'result', id, result: answer.result }, answer.payloadParts ?? answer.payload);
        if (frame.length <= this.#maxFrame) {
          this.#sendRaw(frame);
          return;
        }
        error = new SvError('SV_ERR_AGENT_FRAME_TOO_LARGE', `answer to ${method}: a ${frame.length}-byte frame is over the ${this.#maxFrame}-byte limit`, { method, bytes: frame.length }).toWire();
      }
      this.#send({ t: 'error', id, error: error! });
    })();
  }
}
