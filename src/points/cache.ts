/**
 * A byte-bounded LRU cache of decoded blobs (index pages and blocks) keyed by digest. Blobs are
 * content-addressed, so one cache serves every point, disk and process-local reader: a block shared by two
 * points is decoded once. Entries are immutable buffers (callers must not modify what `get` returns).
 *
 * Memory: at most `maxBytes` of buffers plus ~100 bytes of bookkeeping per entry. A blob larger than a quarter of
 * the budget is not kept (it would evict everything for one read). Map insertion order is the LRU order.
 */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

export interface CacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly bytes: number;
  readonly entries: number;
}

export class BlobCache {
  readonly maxBytes: number;
  #map = new Map<string, Buffer>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;

  constructor(maxBytes = DEFAULT_CACHE_BYTES) {
    this.maxBytes = maxBytes;
  }

  get(key: string): Buffer | undefined {
    const v = this.#map.get(key);
    if (v === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#map.delete(key);
    this.#map.set(key, v);
    return v;
  }

  set(key: string, value: Buffer): void {
    if (value.length > this.maxBytes / 4) return;
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#bytes -= old.length;
      this.#map.delete(key);
    }
    this.#map.set(key, value);
    this.#bytes += value.length;
    for (const [k, v] of this.#map) {
      if (this.#bytes <= this.maxBytes) break;
      this.#map.delete(k);
      this.#bytes -= v.length;
    }
  }

  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }

  stats(): CacheStats {
    return { hits: this.#hits, misses: this.#misses, bytes: this.#bytes, entries: this.#map.size };
  }
}

let shared: BlobCache | undefined;

/** The process-wide cache (SHADOWVAULT_CACHE_MB, default 64 MiB) that point images use unless given one. */
export function sharedBlobCache(): BlobCache {
  if (!shared) {
    const mb = Number(process.env.SHADOWVAULT_CACHE_MB);
    shared = new BlobCache(Number.isFinite(mb) && mb >= 0 ? Math.floor(mb * 1024 * 1024) : DEFAULT_CACHE_BYTES);
  }
  return shared;
}
