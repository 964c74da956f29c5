/**
 * The storage backend: the one narrow interface between the volume store's logic (index, manifests, commit
 * order, gc, prune, verify, holds: storage/*.ts, src/sync/*) and where its bytes live. Two implementations:
 * `FsBackend` (fs.ts: today's on-disk folder, byte for byte) and `S3Backend` (s3.ts: any S3-compatible object
 * store). Cross-cutting behaviour (retries with backoff, a request rate limit, a local cache, fault injection
 * for tests) is written as wrappers that implement this same interface around another backend (wrap-*.ts),
 * never inside a backend. One shared suite (test/storage/backend-contract.ts) runs over every backend and
 * every wrapper stack.
 *
 * Model (after restic's internal/backend): a flat namespace of named objects. A key is a relative path of
 * 1-8 segments of [A-Za-z0-9._-] separated by '/', no segment '.' or '..', no leading or trailing '/';
 * the first segment names the kind of object:
 *   packs/<16 hex>.pack          immutable pack files (blocks and index pages)
 *   index/<seq>-<gen>.idx        immutable index segments
 *   points/<source>/<id>.json    immutable recovery point manifests (published last)
 *   refs/...                     gc's reference table (replaced as a whole)
 *   store.json, sources/*.json, bad.json, gc.json, holds/..., running/..., lease/...  small settings objects
 * The FsBackend maps key K to <dir>/K, so the folder layout of storage/layout.ts is unchanged.
 *
 * CONTRACT (every implementation and wrapper; checked by the shared suite):
 * - `put(key, body)` is create-only: if `key` exists it throws SV_ERR_BACKEND_EXISTS and the existing object is
 *   unchanged. When it resolves the object is durable (fs: file and folder fsynced; s3: the PUT or
 *   CompleteMultipartUpload succeeded and the upload's checksum was verified) and visible whole to `get`, `stat`
 *   and `list`. A failed or interrupted put leaves no object under `key` (a partial upload may leave a temporary
 *   that `list` does not return and `cleanup` removes). `body` is bytes, or `{ file }`: a local file whose
 *   content is the object (a closed pack; the fs backend may move it into place, so the caller must not use
 *   the file afterwards).
 * - `replace(key, body)` writes or overwrites an object atomically: a reader sees the old or the new bytes,
 *   never a mix. Only for the small mutable objects (settings, bad list, gc generation, refs table, leases).
 * - `get(key)` returns the whole object; `getRange(key, offset, length)` exactly `length` bytes from `offset`
 *   (a range past the end throws SV_ERR_BACKEND_SHORT_READ, never returns fewer bytes). A missing key throws
 *   SV_ERR_BACKEND_NOT_FOUND.
 * - `stat(key)` returns size and creation time (fs: mtime; s3: LastModified), or throws
 *   SV_ERR_BACKEND_NOT_FOUND.
 * - `list(prefix)` yields every object whose key starts with `prefix`, each once, in no particular order; keys
 *   only of completed objects (no temporaries). An object put before the listing started is yielded.
 * - `delete(key)` removes an object; deleting a missing key is not an error. When it resolves the delete is
 *   durable (gc deletes a pack only after the segments naming it are gone). An object under retention
 *   (Object Lock) throws SV_ERR_BACKEND_LOCKED and stays.
 * - `cleanup(olderThanMs)` removes what interrupted puts left behind (fs: temporary files; s3: incomplete
 *   multipart uploads) created more than `olderThanMs` ago (an age, not a date), and returns how many.
 * - Errors are coded SV_ERR_BACKEND_* (or SV_ERR_STORE_* where the store's own rules are broken); they never
 *   contain credentials. Transient failures (5xx, throttling, resets) throw SV_ERR_BACKEND_TRANSIENT, which
 *   the retry wrapper retries; the others are final.
 * - Every method is safe to call concurrently, including on the same key (for put: exactly one wins).
 */

/** A serialisable reference to a backend: it crosses worker threads and the engine thread (never secrets). */
export type BackendRef = FsBackendRef | S3BackendRef;

export interface FsBackendRef {
  readonly kind: 'fs';
  /** The store folder. */
  readonly dir: string;
}

export interface S3BackendRef {
  readonly kind: 's3';
  readonly bucket: string;
  /** Key prefix inside the bucket ('' or ending with '/'). */
  readonly prefix: string;
  /** Endpoint URL (https://s3.example.com, http://127.0.0.1:7480); null: AWS's regional endpoint. */
  readonly endpoint: string | null;
  readonly region: string;
  /** Path-style addressing (Ceph RGW, MinIO, s3rver); virtual-hosted style when false. */
  readonly forcePathStyle: boolean;
  /** Requests per second at most (0: no limit). */
  readonly rateLimit: number;
  /** Object Lock retention written with every immutable object, or null. */
  readonly objectLock: { readonly mode: 'COMPLIANCE' | 'GOVERNANCE'; readonly days: number } | null;
  /** Open read-only (a second appliance listing and restoring): every write throws SV_ERR_BACKEND_READ_ONLY. */
  readonly readOnly: boolean;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** When the object was created (fs: mtime; s3: LastModified), epoch ms. */
  readonly createdMs: number;
}

export type ObjectBody = Uint8Array | { readonly file: string };

export interface Backend {
  /** How to open this backend again in another thread. */
  readonly ref: BackendRef;
  /** Where the bytes are, for messages and logs (no credentials): a folder path or s3://bucket/prefix. */
  readonly location: string;
  put(key: string, body: ObjectBody): Promise<void>;
  replace(key: string, body: Uint8Array): Promise<void>;
  get(key: string): Promise<Buffer>;
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  stat(key: string): Promise<ObjectInfo>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  cleanup(olderThanMs: number): Promise<number>;
  /** Releases connections and handles; idempotent. */
  close(): Promise<void>;
}
