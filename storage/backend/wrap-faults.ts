/**
 * Fault injection around any backend, for tests only (the name says so: nothing in the product builds one).
 * A fault is a rule: "the Nth call (1-based, counted per method) of `method`, and the `times - 1` calls after
 * it, fail like this":
 *   - 'transient': throws SV_ERR_BACKEND_TRANSIENT without reaching the inner backend (a 503, a reset);
 *   - 'final': throws SV_ERR_BACKEND_FAULT without reaching the inner backend (a final error);
 *   - 'lost-reply': the call reaches the inner backend and completes, then throws SV_ERR_BACKEND_TRANSIENT (the
 *     reply was lost: the caller cannot know it succeeded);
 *   - 'cut' (put only): the upload is cut midway: nothing is stored under the key; on an fs backend the first
 *     half of the body is left in a temporary file beside the key (what a killed writer leaves), so `cleanup`
 *     has something to remove; then SV_ERR_BACKEND_TRANSIENT.
 * `calls` counts every call per method (faulted or not), so tests can assert how many requests were made.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SvError } from '../../src/errors/index.js';
import { TMP_MARK } from '../fsutil.js';
import { checkKey } from './keys.js';
import { WrappedBackend, type BackendMethod } from './wrap.js';
import type { Backend, ObjectBody, ObjectInfo } from './types.js';

export type FaultKind = 'transient' | 'final' | 'lost-reply' | 'cut';

export interface FaultRule {
  readonly method: BackendMethod;
  /** The first call that fails (1-based, per method). */
  readonly nth: number;
  readonly kind: FaultKind;
  /** How many calls in a row fail from the nth on (default 1). */
  readonly times?: number;
}

export class FaultBackend extends WrappedBackend {
  readonly calls: Record<BackendMethod, number> = { put: 0, replace: 0, get: 0, getRange: 0, stat: 0, list: 0, delete: 0, cleanup: 0 };
  readonly #rules: FaultRule[];

  constructor(inner: Backend, rules: readonly FaultRule[] = []) {
    super(inner);
    this.#rules = [...rules];
  }

  /** Add a rule (counting continues from the calls made so far). */
  inject(rule: FaultRule): void {
    this.#rules.push(rule);
  }

  /** Count a call; the fault it must suffer, if any. */
  #fault(method: BackendMethod): FaultKind | undefined {
    const n = ++this.calls[method];
    return this.#rules.find((r) => r.method === method && n >= r.nth && n < r.nth + (r.times ?? 1))?.kind;
  }

  #error(kind: FaultKind, method: string, key: string): SvError {
    if (kind === 'final') return new SvError('SV_ERR_BACKEND_FAULT', `${this.location}: injected final fault in ${method} ${key}`, { method, key, injected: true });
    return new SvError('SV_ERR_BACKEND_TRANSIENT', `${this.location}: injected ${kind} fault in ${method} ${key}`, { method, key, injected: true });
  }

  async #run<T>(method: BackendMethod, key: string, call: () => Promise<T>): Promise<T> {
    const kind = this.#fault(method);
    if (kind === undefined) return call();
    if (kind === 'lost-reply') {
      await call();
      throw this.#error(kind, method, key);
    }
    throw this.#error(kind, method, key);
  }

  override async put(key: string, body: ObjectBody): Promise<void> {
    const kind = this.#fault('put');
    if (kind === 'cut') {
      await this.#leaveHalf(key, body);
      throw this.#error(kind, 'put', key);
    }
    if (kind === undefined) return this.inner.put(key, body);
    if (kind === 'lost-reply') await this.inner.put(key, body);
    throw this.#error(kind, 'put', key);
  }

  /** What a cut upload leaves: on an fs backend, half the body in a temporary beside the key. */
  async #leaveHalf(key: string, body: ObjectBody): Promise<void> {
    checkKey(key);
    if (this.ref.kind !== 'fs') return;
    const bytes = body instanceof Uint8Array ? body : await readFile(body.file);
    const tmp = join(this.ref.dir, `${key}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(dirname(tmp), { recursive: true });
    await writeFile(tmp, bytes.subarray(0, Math.floor(bytes.length / 2)));
  }

  override replace(key: string, body: Uint8Array): Promise<void> {
    return this.#run('replace', key, () => this.inner.replace(key, body));
  }

  override get(key: string): Promise<Buffer> {
    return this.#run('get', key, () => this.inner.get(key));
  }

  override getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return this.#run('getRange', key, () => this.inner.getRange(key, offset, length));
  }

  override stat(key: string): Promise<ObjectInfo> {
    return this.#run('stat', key, () => this.inner.stat(key));
  }

  override delete(key: string): Promise<void> {
    return this.#run('delete', key, () => this.inner.delete(key));
  }

  override cleanup(olderThanMs: number): Promise<number> {
    return this.#run('cleanup', '*', () => this.inner.cleanup(olderThanMs));
  }

  /** A listing fault strikes after the first object (a listing cut midway), or at once when there is none. */
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const kind = this.#fault('list');
    let yielded = 0;
    for await (const o of this.inner.list(prefix)) {
      if (kind !== undefined && kind !== 'lost-reply' && yielded === 1) throw this.#error(kind, 'list', prefix);
      yield o;
      yielded++;
    }
    if (kind !== undefined) throw this.#error(kind, 'list', prefix);
  }
}
