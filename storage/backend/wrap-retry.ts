/**
 * Retries with exponential backoff and full jitter around any backend: a call that fails with
 * SV_ERR_BACKEND_TRANSIENT is tried again after a random delay in [0, min(maxDelayMs, baseDelayMs * 2^n)),
 * at most `attempts` times in all; then it throws SV_ERR_BACKEND_GAVE_UP naming the method, the key and the
 * number of attempts, with the last transient error as `cause`. Every other error is final and thrown at once.
 *
 * Two calls need care, because a transient failure may hide a success:
 * - put: the first attempt may have stored the object and lost the reply. A retry that then meets
 *   SV_ERR_BACKEND_EXISTS compares the stored object with the body (bytes: equal content; a `{file}` body:
 *   equal size, the file itself may already be moved) and counts it as done when they match; otherwise the
 *   EXISTS error stands (someone else's object is never taken for ours).
 * - list: a listing cut by a transient error starts again and skips the keys it already yielded (each key once).
 */
import { stat as fsStat } from 'node:fs/promises';
import { hasCode, SvError } from '../../src/errors/index.js';
import { WrappedBackend } from './wrap.js';
import type { Backend, ObjectBody, ObjectInfo } from './types.js';

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  readonly attempts?: number;
  /** Delay cap of the first retry, ms (default 100); doubles each retry. */
  readonly baseDelayMs?: number;
  /** Largest delay cap, ms (default 5000). */
  readonly maxDelayMs?: number;
  /** Called before each retry (logs, metrics). */
  readonly onRetry?: (info: { method: string; key: string; attempt: number; delayMs: number; error: unknown }) => void;
}

export class RetryBackend extends WrappedBackend {
  readonly #attempts: number;
  readonly #base: number;
  readonly #max: number;
  readonly #onRetry: RetryOptions['onRetry'];

  constructor(inner: Backend, options: RetryOptions = {}) {
    super(inner);
    this.#attempts = Math.max(1, options.attempts ?? 5);
    this.#base = options.baseDelayMs ?? 100;
    this.#max = options.maxDelayMs ?? 5000;
    this.#onRetry = options.onRetry;
  }

  async #retry<T>(method: string, key: string, call: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(attempt);
      } catch (err) {
        await this.#backoff(method, key, attempt, err);
      }
    }
  }

  /** After a failed attempt: rethrow a final error, give up after the last attempt, else wait (full jitter). */
  async #backoff(method: string, key: string, attempt: number, err: unknown): Promise<void> {
    if (!hasCode(err, 'SV_ERR_BACKEND_TRANSIENT')) throw err;
    if (attempt >= this.#attempts) {
      throw new SvError('SV_ERR_BACKEND_GAVE_UP', `${this.location}: ${method} ${key} failed ${attempt} times with transient errors; last: ${(err as Error).message}`, {
        method, key, attempts: attempt,
      }, { cause: err });
    }
    const delayMs = Math.floor(Math.random() * Math.min(this.#max, this.#base * 2 ** (attempt - 1)));
    this.#onRetry?.({ method, key, attempt, delayMs, error: err });
    await new Promise((r) => setTimeout(r, delayMs));
  }

  override put(key: string, body: ObjectBody): Promise<void> {
    const size = body instanceof Uint8Array ? Promise.resolve(body.length) : fsStat(body.file).then((s) => s.size);
    return this.#retry('put', key, async (attempt) => {
      const expected = await size;
      try {
        await this.inner.put(key, body);
      } catch (err) {
        if (attempt > 1 && hasCode(err, 'SV_ERR_BACKEND_EXISTS') && (await this.#isOurs(key, body, expected))) return;
        throw err;
      }
    });
  }

  /** After a lost reply: is the object under `key` the one an earlier attempt stored? */
  async #isOurs(key: string, body: ObjectBody, size: number): Promise<boolean> {
    if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.length).equals(await this.inner.get(key));
    return (await this.inner.stat(key)).size === size;
  }

  override replace(key: string, body: Uint8Array): Promise<void> {
    return this.#retry('replace', key, () => this.inner.replace(key, body));
  }

  override get(key: string): Promise<Buffer> {
    return this.#retry('get', key, () => this.inner.get(key));
  }

  override getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return this.#retry('getRange', key, () => this.inner.getRange(key, offset, length));
  }

  override stat(key: string): Promise<ObjectInfo> {
    return this.#retry('stat', key, () => this.inner.stat(key));
  }

  override delete(key: string): Promise<void> {
    return this.#retry('delete', key, () => this.inner.delete(key));
  }

  override cleanup(olderThanMs: number): Promise<number> {
    return this.#retry('cleanup', '*', () => this.inner.cleanup(olderThanMs));
  }

  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const seen = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const fresh: ObjectInfo[] = [];
      try {
        for await (const o of this.inner.list(prefix)) {
          if (seen.has(o.key)) continue;
          seen.add(o.key);
          fresh.push(o);
          if (fresh.length >= 1000) yield* fresh.splice(0);
        }
        yield* fresh;
        return;
      } catch (err) {
        yield* fresh;
        await this.#backoff('list', prefix, attempt, err);
      }
    }
  }
}
