/**
 * The engine thread reaches host agents through the main thread: the agent channel (and its AgentRpc) lives
 * on the main thread, the sync engine (and the `agent` DiskSource it opens) in the engine thread. This relay
 * carries AgentRpc calls over a MessagePort, typed in the style of engine/protocol.ts:
 *
 *   engine thread (RelayRpc)                main thread (serveRelay over the real AgentRpc)
 *   {call id agentId method params payload} →
 *                                           ← {answer id result payload bytes} | {error id WireError}
 *   {cancel id}                             →  aborts the call's signal (it still answers, with its error)
 *
 * Payloads cross as transferred ArrayBuffers when the view owns its whole buffer, else as copies. `bytes`
 * in every answer is the agent channel's byte count for that agent, so RelayRpc.bytes() answers synchronously
 * with the latest figure. A port that closes fails every pending call with SV_ERR_AGENT_NO_HOST.
 */
import type { MessagePort } from 'node:worker_threads';
import { fromWire, SvError, toWire, type WireError } from '../errors/index.js';
import type { AgentAnswer, AgentMethod, AgentParams, AgentRpc } from '../agent/rpc.js';

export type RelayRequest =
  | { readonly type: 'call'; readonly id: number; readonly agentId: string; readonly method: AgentMethod; readonly params: unknown; readonly payload?: Uint8Array }
  | { readonly type: 'cancel'; readonly id: number };

export type RelayReply =
  | { readonly type: 'answer'; readonly id: number; readonly result: unknown; readonly payload?: Uint8Array; readonly bytes: { sent: number; received: number } }
  | { readonly type: 'error'; readonly id: number; readonly error: WireError };

/** Buffers to transfer for `view` (none when it shares its ArrayBuffer with other data, e.g. a Buffer pool slab). */
function owned(view: Uint8Array | undefined): { payload?: Uint8Array; transfer: ArrayBuffer[] } {
  if (!view) return { transfer: [] };
  if (view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.byteLength > 0) return { payload: view, transfer: [view.buffer] };
  return { payload: new Uint8Array(view), transfer: [] };
}

/** Engine-thread side: an AgentRpc whose calls cross to the main thread. */
export class RelayRpc implements AgentRpc {
  readonly #port: MessagePort;
  readonly #pending = new Map<number, { resolve(a: AgentAnswer<AgentMethod>): void; reject(e: unknown): void; agentId: string }>();
  readonly #bytes = new Map<string, { sent: number; received: number }>();
  #next = 0;

  constructor(port: MessagePort) {
    this.#port = port;
    port.on('message', (m: RelayReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.type === 'error') {
        p.reject(fromWire(m.error));
        return;
      }
      this.#bytes.set(p.agentId, m.bytes);
      p.resolve({ result: m.result as AgentAnswer<AgentMethod>['result'], ...(m.payload ? { payload: m.payload } : {}) });
    });
    port.on('close', () => {
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        p.reject(new SvError('SV_ERR_AGENT_NO_HOST', 'the agent relay to the main thread closed during the call', { agentId: p.agentId }));
      }
    });
    port.unref();
  }

  call<M extends AgentMethod>(agentId: string, method: M, params: AgentParams<M>, payload?: Uint8Array, signal?: AbortSignal): Promise<AgentAnswer<M>> {
    const id = ++this.#next;
    const onAbort = (): void => this.#port.postMessage({ type: 'cancel', id } satisfies RelayRequest);
    return new Promise<AgentAnswer<M>>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      this.#pending.set(id, { resolve: resolve as (a: AgentAnswer<AgentMethod>) => void, reject, agentId });
      this.#port.ref();
      signal?.addEventListener('abort', onAbort, { once: true });
      const { payload: p, transfer } = owned(payload);
      this.#port.postMessage({ type: 'call', id, agentId, method, params, ...(p ? { payload: p } : {}) } satisfies RelayRequest, transfer);
    }).finally(() => {
      signal?.removeEventListener('abort', onAbort);
      if (this.#pending.size === 0) this.#port.unref();
    });
  }

  bytes(agentId: string): { sent: number; received: number } {
    return this.#bytes.get(agentId) ?? { sent: 0, received: 0 };
  }
}

/** Main-thread side: answer the relay's calls with `rpc`. Returns a function that stops serving. */
export function serveRelay(port: MessagePort, rpc: AgentRpc): () => void {
  const running = new Map<number, AbortController>();
  const onMessage = (m: RelayRequest): void => {
    if (m.type === 'cancel') {
      running.get(m.id)?.abort(new SvError('SV_ERR_CORE_CANCELLED', 'cancelled', {}));
      return;
    }
    const abort = new AbortController();
    running.set(m.id, abort);
    // The method name and params are checked by the agent (hostile-peer rules); here they pass through.
    rpc.call(m.agentId, m.method, m.params as AgentParams<AgentMethod>, m.payload, abort.signal).then(
      (a) => {
        const { payload, transfer } = owned(a.payload);
        port.postMessage({ type: 'answer', id: m.id, result: a.result, ...(payload ? { payload } : {}), bytes: rpc.bytes(m.agentId) } satisfies RelayReply, transfer);
      },
      (err: unknown) => port.postMessage({ type: 'error', id: m.id, error: toWire(err) } satisfies RelayReply),
    ).finally(() => running.delete(m.id));
  };
  port.on('message', onMessage);
  return () => {
    port.off('message', onMessage);
    for (const a of running.values()) a.abort(new SvError('SV_ERR_CORE_CANCELLED', 'relay closed', {}));
    port.close();
  };
}
