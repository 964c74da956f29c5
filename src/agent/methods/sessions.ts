/**
 * The agent's open handles (view sessions, restore handles), each with an id and an idle timeout.
 *
 * CONTRACT
 * - `add(value)` returns a fresh random id (128 bits, hex): ids are not guessable and never reused.
 * - `use(id, fn)` runs fn with the value, counting it busy meanwhile; an unknown id throws `unknown(id)`.
 *   A handle is idle when no call is running on it; after `idleMs` idle it is removed and `expire(value)` runs
 *   (views: abort + release; restores: delete the temp file). A running call never expires its handle.
 * - `peek(id)` returns the value (undefined if unknown) and restarts its idle time, as a call would.
 * - `take(id)` removes a handle and returns it (undefined if unknown): closing is the caller's.
 * - `closeAll()` expires every handle (agent shutdown).
 */
import { randomBytes } from 'node:crypto';
import type { SvError } from '../../errors/index.js';

interface Entry<T> {
  readonly value: T;
  busy: number;
  timer: NodeJS.Timeout | undefined;
}

export class Handles<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #idleMs: number;
  readonly #expire: (value: T, id: string) => Promise<void>;
  readonly #unknown: (id: string) => SvError;

  constructor(opts: { idleMs: number; expire: (value: T, id: string) => Promise<void>; unknown: (id: string) => SvError }) {
    this.#idleMs = opts.idleMs;
    this.#expire = opts.expire;
    this.#unknown = opts.unknown;
  }

  get size(): number {
    return this.#entries.size;
  }

  add(value: T): string {
    const id = randomBytes(16).toString('hex');
    const e: Entry<T> = { value, busy: 0, timer: undefined };
    this.#entries.set(id, e);
    this.#arm(id, e);
    return id;
  }

  async use<R>(id: string, fn: (value: T) => Promise<R>): Promise<R> {
    const e = this.#entries.get(id);
    if (!e) throw this.#unknown(id);
    e.busy++;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    try {
      return await fn(e.value);
    } finally {
      e.busy--;
      if (this.#entries.get(id) === e) this.#arm(id, e);
    }
  }

  peek(id: string): T | undefined {
    const e = this.#entries.get(id);
    if (!e) return undefined;
    this.#arm(id, e);
    return e.value;
  }

  take(id: string): T | undefined {
    const e = this.#entries.get(id);
    if (!e) return undefined;
    this.#entries.delete(id);
    if (e.timer) clearTimeout(e.timer);
    return e.value;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#entries.keys()].map((id) => {
      const v = this.take(id);
      return v === undefined ? undefined : this.#expire(v, id).catch(() => undefined);
    }));
  }

  #arm(id: string, e: Entry<T>): void {
    if (e.busy > 0) return;
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      if (this.#entries.get(id) !== e || e.busy > 0) return;
      this.#entries.delete(id);
      void this.#expire(e.value, id).catch(() => undefined);
    }, this.#idleMs);
    e.timer.unref();
  }
}
