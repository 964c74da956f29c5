/**
 * The `agent` disk source: a disk of a point-in-time view held by a host agent (src/agent/methods/), read
 * through AgentRpc (the agent channel on the main thread; in the engine thread, the relay of agent-relay.ts).
 *
 * - `backupRange` asks the agent to hash and compress the range at the source (view.range, with the old
 *   digests as payload) and rebuilds the full RangeResult from the changed blocks it sends
 *   (range-codec.ts): unchanged blocks keep their old digests. The agent is a network peer: every packed
 *   payload is decompressed and hashed here before it is returned (a payload that does not match its digest
 *   would otherwise poison the deduplicated store), SV_ERR_AGENT_BAD_ANSWER if not.
 * - Batching: backupRange requests are collected and flushed on setImmediate (everything asked in one turn of
 *   the event loop: a sync's many small ranges of an incremental). Requests of the same block size, level and
 *   digest mode go out together, at most BATCH_BYTES / BATCH_RANGES per `view.spans` call (one read batch
 *   and one worker task on the agent); a lone request, or one of BATCH_BYTES or more, goes as view.range.
 *   An agent without view.spans (older: SV_ERR_AGENT_UNKNOWN_METHOD) gets view.range per request from then
 *   on. Each range is decoded and verified on its own; a failed call fails every range it carried.
 * - `read` / `extents`: view.read / view.extents, checked (exact length; extents covering the disk in order).
 * - `bytesTransferred`: the bytes of this source's calls on the channel, both directions: each call's JSON
 *   header and payload, and each answer's (the channel's framing adds a few bytes per call on top).
 * - The view belongs to the job that opened it (view.open … commit/abort/release); `close` only ends this
 *   source's use of it.
 */
import { hasCode, SvError } from '../errors/index.js';
import { checkReadRange, ExtentBuilder } from '../formats/common.js';
import type { DiskInfo, Extent, ExtentKind } from '../formats/types.js';
import { unpackBlock } from '../native/index.js';
import type { AgentMethod, AgentParams, AgentRpc, AgentAnswer } from '../agent/rpc.js';
import { decodeRangeAnswer } from '../agent/methods/range-codec.js';
import { checkRange } from './range.js';
import type { AgentSourceRef, DiskSource, DiskSourceOpener, RangeRequest, RangeResult } from './types.js';

const KINDS: readonly ExtentKind[] = ['data', 'zero', 'unallocated'];
/** Most bytes and ranges of one view.spans call (the agent accepts up to MAX_CALL_BYTES and MAX_SPANS). */
export const BATCH_BYTES = 8 * 1024 * 1024;
export const BATCH_RANGES = 1024;

interface Pending {
  readonly req: RangeRequest;
  readonly signal: AbortSignal | undefined;
  resolve(r: RangeResult): void;
  reject(err: unknown): void;
}

function badAnswer(ref: AgentSourceRef, why: string, details: Record<string, unknown> = {}, cause?: unknown): SvError {
  return new SvError('SV_ERR_AGENT_BAD_ANSWER', `agent ${ref.agentId}, disk ${ref.disk} (${ref.name}): ${why}`, { agentId: ref.agentId, disk: ref.disk, ...details }, { cause });
}

class AgentSource implements DiskSource {
  readonly ref: AgentSourceRef;
  readonly info: DiskInfo;
  readonly #rpc: AgentRpc;
  #closed = false;
  #bytes = 0;
  #queue: Pending[] = [];
  #spans = true;

  constructor(ref: AgentSourceRef, rpc: AgentRpc) {
    this.ref = ref;
    this.#rpc = rpc;
    this.info = {
      path: `agent:${ref.agentId}/${ref.name}`, format: 'raw', variant: 'fixed', virtualSize: ref.virtualSize,
      logicalSectorSize: 512, physicalSectorSize: 4096, blockSize: 1024 * 1024, extra: { agentId: ref.agentId, session: ref.session, disk: ref.disk },
    };
  }

  get bytesTransferred(): number {
    return this.#bytes;
  }

  #open(what: string): void {
    if (this.#closed) throw new SvError('SV_ERR_SOURCE_CLOSED', `${this.info.path}: ${what} after close`, { path: this.info.path });
  }

  async #call<M extends AgentMethod>(method: M, params: AgentParams<M>, payload?: Uint8Array, signal?: AbortSignal): Promise<AgentAnswer<M>> {
    const sent = JSON.stringify({ method, params }).length + (payload?.length ?? 0);
    const a = await this.#rpc.call(this.ref.agentId, method, params, payload, signal);
    this.#bytes += sent + JSON.stringify(a.result ?? null).length + (a.payload?.length ?? 0);
    return a;
  }

  async extents(): Promise<Extent[]> {
    this.#open('extents');
    const { result } = await this.#call('view.extents', { session: this.ref.session, disk: this.ref.disk });
    const list: unknown = result?.extents;
    if (!Array.isArray(list) || list.length > 10_000_000) throw badAnswer(this.ref, 'view.extents did not answer a list of extents');
    const b = new ExtentBuilder();
    let at = 0;
    for (const e of list as Array<Record<string, unknown>>) {
      const ok = typeof e === 'object' && e !== null && e.offset === at && Number.isSafeInteger(e.length) && (e.length as number) > 0 && KINDS.includes(e.kind as ExtentKind);
      if (!ok) throw badAnswer(this.ref, `view.extents: extent at byte ${at} is malformed or out of order`, { at });
      b.push(at, e.length as number, e.kind as ExtentKind);
      at += e.length as number;
    }
    if (at !== this.ref.virtualSize) throw badAnswer(this.ref, `view.extents cover ${at} bytes of ${this.ref.virtualSize}`, { covered: at });
    return b.done();
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    this.#open('read');
    checkReadRange(this.info.path, this.ref.virtualSize, offset, length, target);
    const out = target ? target.subarray(0, length) : Buffer.allocUnsafe(length);
    const MAX = 16 * 1024 * 1024;
    for (let done = 0; done < length;) {
      const n = Math.min(MAX, length - done);
      const a = await this.#call('view.read', { session: this.ref.session, disk: this.ref.disk, offset: offset + done, length: n });
      if (!a.payload || a.payload.length !== n) throw badAnswer(this.ref, `view.read of ${n} bytes at ${offset + done} answered ${a.payload?.length ?? 0} bytes`, { offset: offset + done, length: n });
      out.set(a.payload, done);
      done += n;
    }
    return out;
  }

  backupRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult> {
    try {
      this.#open('backupRange');
      checkRange(req, this.ref.virtualSize, this.info.path);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.#spans || req.length >= BATCH_BYTES) return this.#range(req, signal);
    return new Promise<RangeResult>((resolve, reject) => {
      if (this.#queue.length === 0) setImmediate(() => this.#flush());
      this.#queue.push({ req, signal, resolve, reject });
    });
  }

  /** Send what was queued this turn: batches of like requests (see the header). */
  #flush(): void {
    const groups = new Map<string, Pending[]>();
    for (const p of this.#queue) {
      const key = `${p.req.blockSize}/${p.req.level}/${p.req.oldDigests !== null}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(p);
    }
    this.#queue = [];
    for (const g of groups.values()) {
      let batch: Pending[] = [];
      let bytes = 0;
      for (const p of g) {
        if (batch.length && (bytes + p.req.length > BATCH_BYTES || batch.length >= BATCH_RANGES)) {
          this.#send(batch);
          batch = [];
          bytes = 0;
        }
        batch.push(p);
        bytes += p.req.length;
      }
      this.#send(batch);
    }
  }

  #send(batch: Pending[]): void {
    const settle = (p: Pending, run: Promise<RangeResult>): void => void run.then(p.resolve, p.reject);
    if (batch.length === 1 || !this.#spans) {
      for (const p of batch) settle(p, this.#range(p.req, p.signal));
      return;
    }
    const signals = [...new Set(batch.map((p) => p.signal).filter((x): x is AbortSignal => x !== undefined))];
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    this.#spansCall(batch.map((p) => p.req), signal).then((out) => {
      batch.forEach((p, i) => {
        const r = out[i]!;
        if (r instanceof Error) p.reject(r);
        else p.resolve(r);
      });
    }, (err: unknown) => {
      if (hasCode(err, 'SV_ERR_AGENT_UNKNOWN_METHOD')) {
        this.#spans = false; // an older agent: view.range from now on
        for (const p of batch) settle(p, this.#closed ? Promise.reject(err) : this.#range(p.req, p.signal));
        return;
      }
      for (const p of batch) p.reject(err);
    });
  }

  /** One view.spans call; per range its result, or the error of its answer's part. */
  async #spansCall(reqs: RangeRequest[], signal: AbortSignal | undefined): Promise<Array<RangeResult | Error>> {
    const first = reqs[0]!;
    const olds = reqs.map((r) => (r.oldDigests ? new Uint8Array(r.oldDigests) : null));
    const hasOld = first.oldDigests !== null;
    const a = await this.#call('view.spans', {
      session: this.ref.session, disk: this.ref.disk, blockSize: first.blockSize, level: first.level, hasOld, spans: reqs.map((r) => [r.offset, r.length] as [number, number]),
    }, hasOld ? Buffer.concat(olds as Uint8Array[]) : undefined, signal);
    const lengths: unknown = a.result?.lengths;
    const payload = a.payload ?? new Uint8Array(0);
    const ok = Array.isArray(lengths) && lengths.length === reqs.length && lengths.every((n) => Number.isSafeInteger(n) && n >= 0)
      && (lengths as number[]).reduce((x, n) => x + n, 0) === payload.length;
    if (!ok) throw badAnswer(this.ref, `view.spans answered lengths that do not split its ${payload.length}-byte payload into ${reqs.length} ranges`, { spans: reqs.length });
    let at = 0;
    return reqs.map((req, i) => {
      const part = payload.subarray(at, at + (lengths[i] as number));
      at += lengths[i] as number;
      try {
        const res = decodeRangeAnswer(part, { count: Math.ceil(req.length / req.blockSize), blockSize: req.blockSize, length: req.length }, olds[i] ?? null);
        this.#verify(req, res);
        return res;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    });
  }

  /** One range as one view.range call. */
  async #range(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult> {
    this.#open('backupRange');
    const old = req.oldDigests ? new Uint8Array(req.oldDigests) : null;
    const a = await this.#call('view.range', {
      session: this.ref.session, disk: this.ref.disk, offset: req.offset, length: req.length, blockSize: req.blockSize, level: req.level, hasOld: old !== null,
    }, req.oldDigests ? new Uint8Array(req.oldDigests) : undefined, signal);
    const count = Math.ceil(req.length / req.blockSize);
    if (a.result?.count !== count) throw badAnswer(this.ref, `view.range answered ${String(a.result?.count)} blocks for a ${count}-block range`, { count });
    const res = decodeRangeAnswer(a.payload ?? new Uint8Array(0), { count, blockSize: req.blockSize, length: req.length }, old);
    this.#verify(req, res);
    return res;
  }

  /** Every packed payload decompresses to a block with its digest (else SV_ERR_AGENT_BAD_ANSWER). */
  #verify(req: RangeRequest, res: RangeResult): void {
    for (let j = 0; j < res.packed.length; j++) {
      const i = res.packed[j]!;
      const size = Math.min(req.blockSize, req.length - i * req.blockSize);
      const digest = res.digests.subarray(i * 32, i * 32 + 32);
      try {
        unpackBlock(res.payload.subarray(res.offsets[j]!, res.offsets[j + 1]!), res.flags[j]!, digest, size);
      } catch (err) {
        throw badAnswer(this.ref, `view.range: block ${i} at byte ${req.offset + i * req.blockSize} does not match its digest`, { block: i, offset: req.offset + i * req.blockSize }, err);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** The opener of `agent` references over `rpc` (registered in the appliance and its engine thread). */
export function agentOpener(rpc: AgentRpc): DiskSourceOpener<AgentSourceRef> {
  return async (ref) => new AgentSource(ref, rpc);
}
