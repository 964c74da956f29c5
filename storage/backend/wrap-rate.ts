/**
 * A request rate limit around any backend: a token bucket holding at most `burst` tokens (default: one
 * second's worth, at least 1), refilled at `perSecond`. Every call takes one token before it reaches the inner
 * backend (a listing takes one per call; the backend's own pages are not counted here). Waiters are served in
 * arrival order. `perSecond` 0 or less: no limit.
 */
import { WrappedBackend } from './wrap.js';
import type { Backend, ObjectBody, ObjectInfo } from './types.js';

export class RateLimitBackend extends WrappedBackend {
  readonly perSecond: number;
  readonly #burst: number;
  #tokens: number;
  #last = Date.now();
  /** The previous caller's turn: callers queue on it (FIFO). */
  #turn: Promise<void> = Promise.resolve();

  constructor(inner: Backend, perSecond: number, burst?: number) {
    super(inner);
    this.perSecond = perSecond;
    this.#burst = Math.max(1, burst ?? perSecond);
    this.#tokens = this.#burst;
  }

  /** Wait for a token. */
  #take(): Promise<void> {
    if (this.perSecond <= 0) return Promise.resolve();
    const mine = this.#turn.then(async () => {
      for (;;) {
        const now = Date.now();
        this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.perSecond);
        this.#last = now;
        if (this.#tokens >= 1) {
          this.#tokens -= 1;
          return;
        }
        await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / this.perSecond) * 1000)));
      }
    });
    this.#turn = mine;
    return mine;
  }

  override async put(key: string, body: ObjectBody): Promise<void> {
    await this.#take();
    return this.inner.put(key, body);
  }

  override async replace(key: string, body: Uint8Array): Promise<void> {
    await this.#take();
    return this.inner.replace(key, body);
  }

  override async get(key: string): Promise<Buffer> {
    await this.#take();
    return this.inner.get(key);
  }

  override async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    await this.#take();
    return this.inner.getRange(key, offset, length);
  }

  override async stat(key: string): Promise<ObjectInfo> {
    await this.#take();
    return this.inner.stat(key);
  }

  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.#take();
    yield* this.inner.list(prefix);
  }

  override async delete(key: string): Promise<void> {
    await this.#take();
    return this.inner.delete(key);
  }

  override async cleanup(olderThanMs: number): Promise<number> {
    await this.#take();
    return this.inner.cleanup(olderThanMs);
  }
}
