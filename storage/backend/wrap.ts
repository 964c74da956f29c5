/**
 * The base of every wrapper (wrap-*.ts): a Backend that forwards each call to the backend it wraps. A wrapper
 * overrides the methods whose behaviour it changes and keeps the contract of types.ts. `ref` and `location`
 * are the inner backend's: a wrapper is how this thread talks to the store, not another store.
 */
import type { Backend, BackendRef, ObjectBody, ObjectInfo } from './types.js';

export class WrappedBackend implements Backend {
  protected readonly inner: Backend;

  constructor(inner: Backend) {
    this.inner = inner;
  }

  /** The backend this one wraps. */
  get wrapped(): Backend {
    return this.inner;
  }

  get ref(): BackendRef {
    return this.inner.ref;
  }

  get location(): string {
    return this.inner.location;
  }

  put(key: string, body: ObjectBody): Promise<void> {
    return this.inner.put(key, body);
  }

  replace(key: string, body: Uint8Array): Promise<void> {
    return this.inner.replace(key, body);
  }

  get(key: string): Promise<Buffer> {
    return this.inner.get(key);
  }

  getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return this.inner.getRange(key, offset, length);
  }

  stat(key: string): Promise<ObjectInfo> {
    return this.inner.stat(key);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  cleanup(olderThanMs: number): Promise<number> {
    return this.inner.cleanup(olderThanMs);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export type BackendMethod = 'put' | 'replace' | 'get' | 'getRange' | 'stat' | 'list' | 'delete' | 'cleanup';

/** The backend at the bottom of a stack of wrappers (the S3Backend of cache(retry(rate(S3))), ...). */
export function innermost(backend: Backend): Backend {
  let b = backend;
  while (b instanceof WrappedBackend) b = b.wrapped;
  return b;
}
