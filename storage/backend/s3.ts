/**
 * S3Backend: the store's objects in an S3-compatible bucket (AWS S3, Ceph RGW, MinIO, s3rver) under a key
 * prefix, through the AWS SDK v3. Key K of the store is object `<prefix>K`; the layout of types.ts is kept
 * (packs/, index/, points/, refs/, settings objects, lease/writer.json).
 *
 * How the contract of types.ts is met:
 * - put: create-only and verified (s3-upload.ts: Content-MD5 on every body, multipart ≥ 16 MiB with 8 MiB
 *   parts (8 in flight: a 64 MiB pack in one wave), HEAD after upload; a body with Content-MD5 goes with an unsigned
 *   payload (SigV4 UNSIGNED-PAYLOAD: the signed Content-MD5 binds it; see the constructor); If-None-Match: * where the server honours it, else HEAD-before-PUT, see there).
 *   Puts of one key from this process are queued one after another, so "exactly one wins" holds without
 *   conditional writes too. An interrupted multipart upload leaves an incomplete upload: never listed,
 *   aborted by cleanup(). With Object Lock each put carries the retention (mode, now + days).
 * - replace: one PutObject (S3 replaces objects atomically: readers see old or new bytes), Content-MD5.
 * - get/getRange: GetObject, ranged; at most `getConcurrency` GETs in flight (restore and verify issue many).
 *   A range past the end (416, or fewer bytes than asked) is SV_ERR_BACKEND_SHORT_READ.
 * - list: ListObjectsV2 paginated; incomplete multipart uploads are never objects, so only completed ones.
 * - delete: on a versioned bucket (Object Lock needs versioning) every version of the key is removed, not just
 *   hidden behind a delete marker; an object under retention or legal hold throws SV_ERR_BACKEND_LOCKED and
 *   stays (gc and prune skip and report it). See s3-delete.ts.
 * - cleanup: ListMultipartUploads under the prefix, AbortMultipartUpload those initiated before the cutoff.
 *   A server without ListMultipartUploads (s3rver answers NotImplemented) cannot show what a killed process
 *   left; there cleanup aborts only the uploads this process failed to abort itself (a documented limit of
 *   such servers; AWS, Ceph RGW and MinIO list them).
 * - errors: s3-errors.ts; SDK retries are off (maxAttempts 1): retrying is the retry wrapper's job.
 * - one writer: opened for writing, the backend takes the writer lease (s3-lease.ts) and checks it before
 *   every write; read-only (ref.readOnly) takes none and refuses every write with SV_ERR_BACKEND_READ_ONLY.
 * Credentials come from the SDK's default chain (env, shared files, instance roles) or `opts.credentials`;
 * they are never in the ref, `location`, messages or details.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import {
  AbortMultipartUploadCommand, GetObjectCommand, GetObjectLockConfigurationCommand, HeadObjectCommand,
  ListObjectsV2Command, PutObjectCommand, S3Client, type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { hasCode, SvError } from '../../src/errors/index.js';
import { Limit } from './limit.js';
import { abortUploads, deleteAllVersions } from './s3-delete.js';
import { s3Error, s3Send } from './s3-errors.js';
import { WriterLease, type LeaseStore } from './s3-lease.js';
import { RangedGets, type RequestSigner } from './s3-get.js';
import { uploadObject, type UploadTuning } from './s3-upload.js';
import { checkKey, checkPrefix, isValidKey, shortRead } from './keys.js';
import { describeRef, registerBackend } from './open.js';
import type { Backend, ObjectBody, ObjectInfo, S3BackendRef } from './types.js';

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface S3Options {
  /** Explicit credentials (tests, a second account); default: the SDK's default provider chain. */
  readonly credentials?: S3Credentials;
  /** Who writes, for the lease (default: /etc/machine-id, else the host name). */
  readonly applianceId?: string;
  /** Lease lifetime (default 10 min; renewed every third of it). */
  readonly leaseTtlMs?: number;
  /** Take the writer lease when opened for writing (default true; false: the caller holds it elsewhere). */
  readonly lease?: boolean;
  /** Ranged GETs in flight at most (default 16). */
  readonly getConcurrency?: number;
  readonly upload?: Partial<UploadTuning>;
  /** Per-request timeout (default 120 s). */
  readonly requestTimeoutMs?: number;
  /** Force create-only by HEAD-before-PUT (tests of that path); default: probe If-None-Match at open. */
  readonly conditionalWrites?: boolean;
  /** Ranged GETs on an http: endpoint without the SDK's pipeline (s3-get.ts; default true); false: the SDK's. */
  readonly rangedGets?: boolean;
}

const PROBE = 'lease/probe-';
const DEFAULT_TUNING: UploadTuning = { multipartThreshold: 16 << 20, partSize: 8 << 20, concurrency: 8 };

function defaultApplianceId(): string {
  try {
    const id = readFileSync('/etc/machine-id', 'utf8').trim();
    if (id) return id;
  } catch { /* no machine id: the host name */ }
  return hostname();
}

/**
 * A ranged GET's body read straight into one buffer of the `length` asked (one copy per network chunk; the
 * SDK's transformToByteArray gathers the chunks and concatenates them, which costs a restore a second copy of
 * every byte and the garbage of both). Null when the body is not exactly `length` bytes.
 */
async function readBody(body: unknown, length: number): Promise<Buffer | null> {
  const out = Buffer.allocUnsafe(length);
  let at = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    if (at + chunk.byteLength > length) return null;
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return at === length ? out : null;
}

export class S3Backend implements Backend {
  readonly ref: S3BackendRef;
  readonly location: string;
  readonly #client: S3Client;
  readonly #tuning: UploadTuning;
  readonly #gets: Limit;
  readonly #putQueue = new Map<string, Promise<unknown>>();
  /** Multipart uploads of this process that failed and could not be aborted: upload id → key, when. */
  readonly #leftovers = new Map<string, { key: string; ms: number }>();
  /** HTTP requests sent, by S3 operation (PutObject, UploadPart, GetObject, HeadObject, ListObjectsV2...). */
  readonly #requests = new Map<string, number>();
  /** Whether the server honours If-None-Match: * (probed before the lease is taken, else at the first put). */
  #conditional: Promise<boolean> | undefined;
  #conditionalKnown = false;
  #lease: WriterLease | null = null;
  #closed = false;
  /** Ranged GETs straight into their buffers (s3-get.ts), on plain-HTTP endpoints. */
  readonly #ranged: RangedGets | undefined;

  private constructor(ref: S3BackendRef, opts: S3Options) {
    this.ref = ref;
    this.location = describeRef(ref);
    this.#tuning = { ...DEFAULT_TUNING, ...opts.upload };
    this.#gets = new Limit(opts.getConcurrency ?? 16);
    this.#client = new S3Client({
      region: ref.region,
      ...(ref.endpoint !== null ? { endpoint: ref.endpoint } : {}),
      forcePathStyle: ref.forcePathStyle,
      ...(opts.credentials ? { credentials: { ...opts.credentials } } : {}),
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 120_000, connectionTimeout: 10_000 },
    });
    const endpoint = ref.endpoint !== null ? new URL(ref.endpoint) : null;
    if (endpoint?.protocol === 'http:' && (opts.rangedGets ?? true)) {
      const config = this.#client.config as unknown as { signer: () => Promise<RequestSigner> };
      this.#ranged = new RangedGets({
        endpoint, bucket: ref.bucket, forcePathStyle: ref.forcePathStyle, region: ref.region, signer: () => config.signer(),
        requestTimeoutMs: opts.requestTimeoutMs ?? 120_000, connectTimeoutMs: 10_000,
      });
    }
    this.#client.middlewareStack.add((next, context) => async (args) => {
      const op = String(context.commandName ?? 'unknown').replace(/Command$/u, '');
      this.#requests.set(op, (this.#requests.get(op) ?? 0) + 1);
      return next(args);
    }, { step: 'initialize', name: 'shadowvaultRequestCount' });
    // A body that carries Content-MD5 is sent with an unsigned payload: Content-MD5 is a signed header and the
    // server refuses a body that does not match it (BadDigest), so the body is as bound to the signature as
    // with a SHA-256 payload hash, which would cost a second pass over every byte here and another in the
    // server (the gateway's CPU, on the same machine or not, is a backup's upload speed).
    this.#client.middlewareStack.add((next) => async (args) => {
      const headers = (args.request as { headers?: Record<string, string> } | undefined)?.headers;
      if (headers && Object.keys(headers).some((h) => h.toLowerCase() === 'content-md5')) headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    }, { step: 'build', name: 'shadowvaultUnsignedPayload' });
  }

  /**
   * Open the store at `ref`: checks bucket and credentials with one LIST (NO_BUCKET, AUTH, ACCESS_DENIED), and
   * when writing probes conditional writes and takes the writer lease (LEASE_HELD).
   */
  static async open(ref: S3BackendRef, opts: S3Options = {}): Promise<S3Backend> {
    const b = new S3Backend(ref, opts);
    try {
      // A LIST (not HEAD bucket: its errors have no body to tell AUTH from ACCESS_DENIED) of one fixed key, so
      // the answer is never truncated (s3rver cannot make continuation tokens under OpenSSL 3).
      await b.#send('LIST', undefined, new ListObjectsV2Command({ Bucket: ref.bucket, Prefix: `${ref.prefix}lease/writer.json`, MaxKeys: 1 }));
      if (ref.objectLock) await b.#checkObjectLock();
      if (!ref.readOnly) {
        if (opts.conditionalWrites !== undefined) b.#conditional = Promise.resolve(opts.conditionalWrites);
        if (opts.lease ?? true) {
          b.#conditionalKnown = await b.#isConditional();
          b.#lease = await WriterLease.take(b.#leaseStore(), {
            applianceId: opts.applianceId ?? defaultApplianceId(), host: hostname(), ttlMs: opts.leaseTtlMs ?? 600_000,
          });
        }
      }
    } catch (err) {
      b.#client.destroy();
      throw err;
    }
    return b;
  }

  /** Object Lock asked for: the bucket must have it enabled (created with it; versioning is then on). */
  async #checkObjectLock(): Promise<void> {
    type Conf = { ObjectLockConfiguration?: { ObjectLockEnabled?: string } };
    const conf = await this.#send<Conf>('GetObjectLockConfiguration', undefined, new GetObjectLockConfigurationCommand({ Bucket: this.ref.bucket }))
      .catch((err: unknown): Conf => {
        if (hasCode(err, 'SV_ERR_BACKEND_AUTH', 'SV_ERR_BACKEND_TRANSIENT', 'SV_ERR_BACKEND_NO_BUCKET')) throw err;
        return {}; // ObjectLockConfigurationNotFoundError: not enabled
      });
    if (conf.ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled') {
      throw new SvError('SV_ERR_BACKEND_OBJECT_LOCK', `${this.location}: the store URL asks for Object Lock (lock=${this.ref.objectLock?.mode}:${this.ref.objectLock?.days}) but bucket ${this.ref.bucket} does not have Object Lock enabled; create the bucket with Object Lock (versioning is then on)`, {
        bucket: this.ref.bucket,
      });
    }
  }

  /**
   * The probe's answer, asked once: a writer asks before taking its lease; a backend opened without the lease
   * (worker threads: they only read) asks at its first put, if ever.
   */
  #isConditional(): Promise<boolean> {
    if (!this.#conditional) {
      this.#conditional = this.#probeConditional();
      this.#conditional.catch(() => { this.#conditional = undefined; });
    }
    return this.#conditional;
  }

  /** Does the server refuse a second `If-None-Match: *` PUT? (AWS since 2024, Ceph RGW: yes; s3rver: no.) */
  async #probeConditional(): Promise<boolean> {
    const key = `${this.ref.prefix}${PROBE}${Date.now()}-${process.pid}-${Math.random().toString(16).slice(2)}`;
    const put = (): Promise<unknown> => this.#client.send(new PutObjectCommand({ Bucket: this.ref.bucket, Key: key, Body: Buffer.alloc(0), IfNoneMatch: '*' }));
    try {
      await put().catch((err: unknown) => { throw s3Error(err, { op: 'PUT', bucket: this.ref.bucket, key }); });
      return await put().then(() => false, (err: unknown) => {
        if (hasCode(s3Error(err, { op: 'PUT', bucket: this.ref.bucket, key }), 'SV_ERR_BACKEND_EXISTS')) return true;
        throw s3Error(err, { op: 'PUT', bucket: this.ref.bucket, key });
      });
    } finally {
      await deleteAllVersions(this.#client, this.ref.bucket, key).catch(() => {});
    }
  }

  #leaseStore(): LeaseStore {
    const key = this.#full('lease/writer.json');
    const bucket = this.ref.bucket;
    const write = async (body: Buffer, cond: { IfNoneMatch?: string; IfMatch?: string }): Promise<boolean> => {
      try {
        await this.#client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...(this.#conditionalKnown ? cond : {}) }));
        return true;
      } catch (err) {
        const coded = s3Error(err, { op: 'PUT', bucket, key });
        if (hasCode(coded, 'SV_ERR_BACKEND_EXISTS')) return false;
        throw coded;
      }
    };
    return {
      location: this.location,
      read: async () => {
        try {
          const r = await this.#client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          return { body: Buffer.from(await r.Body!.transformToByteArray()), etag: r.ETag ?? '' };
        } catch (err) {
          const coded = s3Error(err, { op: 'GET', bucket, key });
          if (hasCode(coded, 'SV_ERR_BACKEND_NOT_FOUND')) return null;
          throw coded;
        }
      },
      create: (body) => write(body, { IfNoneMatch: '*' }),
      // Unquoted: Ceph RGW 16 refuses the quoted form (412) it sends itself.
      swap: (body, etag) => write(body, { IfMatch: etag.replace(/"/gu, '') }),
      remove: () => deleteAllVersions(this.#client, this.ref.bucket, key),
    };
  }

  #full(key: string): string {
    return `${this.ref.prefix}${checkKey(key)}`;
  }

  /** One request, its failure coded. (`cmd` is any command of the S3 client; its output type is the caller's T.) */
  #send<T = unknown>(op: string, key: string | undefined, cmd: object): Promise<T> {
    return s3Send<T>(this.#client, { op, bucket: this.ref.bucket, ...(key !== undefined ? { key } : {}) }, cmd);
  }

  #writable(what: string): void {
    if (this.#closed) throw new SvError('SV_ERR_BACKEND_IO', `${this.location} is closed (${what})`, {});
    if (this.ref.readOnly) throw new SvError('SV_ERR_BACKEND_READ_ONLY', `${this.location} is open read-only: cannot ${what}`, { location: this.location });
    this.#lease?.check();
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    const full = this.#full(key);
    this.#writable(`put ${key}`);
    const prev = this.#putQueue.get(full) ?? Promise.resolve();
    const days = this.ref.objectLock?.days ?? 0;
    const mine = prev.catch(() => {}).then(() => this.#isConditional()).then((conditional) => uploadObject({
      client: this.#client, bucket: this.ref.bucket, key: full, conditional,
      leftover: (k, uploadId) => this.#leftovers.set(uploadId, { key: k, ms: Date.now() }),
      lock: this.ref.objectLock ? { mode: this.ref.objectLock.mode, until: new Date(Date.now() + days * 86_400_000) } : null,
    }, body, this.#tuning));
    this.#putQueue.set(full, mine);
    try {
      await mine;
    } finally {
      if (this.#putQueue.get(full) === mine) this.#putQueue.delete(full);
    }
  }

  async replace(key: string, body: Uint8Array): Promise<void> {
    const full = this.#full(key);
    this.#writable(`replace ${key}`);
    const digest = createHash('md5').update(body).digest();
    const out = await this.#send<{ ETag?: string }>('PUT', full, new PutObjectCommand({
      Bucket: this.ref.bucket, Key: full, Body: body, ContentLength: body.byteLength, ContentMD5: digest.toString('base64'),
    }));
    const etag = (out.ETag ?? '').replace(/"/gu, '').toLowerCase();
    if (/^[0-9a-f]{32}$/u.test(etag) && etag !== digest.toString('hex')) {
      throw new SvError('SV_ERR_BACKEND_CHECKSUM', `s3://${this.ref.bucket}/${full}: the server's ETag ${etag} is not the MD5 ${digest.toString('hex')} of what was sent`, { bucket: this.ref.bucket, key: full });
    }
  }

  async get(key: string): Promise<Buffer> {
    const full = this.#full(key);
    return this.#gets.run(async () => {
      const r = await this.#send<{ Body?: { transformToByteArray(): Promise<Uint8Array> } }>('GET', full, new GetObjectCommand({ Bucket: this.ref.bucket, Key: full }));
      const bytes = await r.Body!.transformToByteArray().catch((err: unknown) => { throw s3Error(err, { op: 'GET', bucket: this.ref.bucket, key: full }); });
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const full = this.#full(key);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw shortRead(this.location, key, offset, length, null);
    }
    const short = (size: number | null): SvError => shortRead(this.location, key, offset, length, size);
    if (length === 0) {
      const info = await this.stat(key);
      if (offset > info.size) throw short(info.size);
      return Buffer.alloc(0);
    }
    return this.#gets.run(async () => {
      if (this.#ranged) {
        this.#requests.set('GetObject', (this.#requests.get('GetObject') ?? 0) + 1);
        const got = await this.#ranged.get(full, offset, length).catch((err: unknown) => {
          throw hasCode(err, 'SV_ERR_BACKEND_SHORT_READ') ? short(null) : err;
        });
        if (Buffer.isBuffer(got)) return got;
        if (got !== 'fallback') throw short(got.short);
      }
      let r: { Body?: unknown; ContentRange?: string };
      try {
        r = await this.#send('GET', full, new GetObjectCommand({ Bucket: this.ref.bucket, Key: full, Range: `bytes=${offset}-${offset + length - 1}` }));
      } catch (err) {
        if (hasCode(err, 'SV_ERR_BACKEND_SHORT_READ')) throw short(null);
        throw err;
      }
      const bytes = await readBody(r.Body, length).catch((err: unknown) => { throw s3Error(err, { op: 'GET', bucket: this.ref.bucket, key: full }); });
      if (bytes === null) {
        const total = /\/(\d+)$/u.exec(r.ContentRange ?? '');
        throw short(total ? Number(total[1]) : null);
      }
      return bytes;
    });
  }

  async stat(key: string): Promise<ObjectInfo> {
    const full = this.#full(key);
    const h = await this.#send<HeadObjectCommandOutput>('HEAD', full, new HeadObjectCommand({ Bucket: this.ref.bucket, Key: full }));
    return { key, size: h.ContentLength ?? 0, createdMs: h.LastModified?.getTime() ?? 0 };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.#send<{ Contents?: { Key?: string; Size?: number; LastModified?: Date }[]; IsTruncated?: boolean; NextContinuationToken?: string }>(
        'LIST', `${this.ref.prefix}${prefix}`,
        new ListObjectsV2Command({ Bucket: this.ref.bucket, Prefix: `${this.ref.prefix}${prefix}`, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key?.startsWith(this.ref.prefix)) continue;
        const key = o.Key.slice(this.ref.prefix.length);
        if (key.startsWith(PROBE) || !isValidKey(key)) continue; // probes; foreign objects under the prefix
        yield { key, size: o.Size ?? 0, createdMs: o.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const full = this.#full(key);
    this.#writable(`delete ${key}`);
    await deleteAllVersions(this.#client, this.ref.bucket, full);
  }



  async cleanup(olderThanMs: number): Promise<number> {
    this.#writable('clean up');
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    let listed = true;
    try {
      removed += await abortUploads(this.#client, this.ref.bucket, this.ref.prefix, cutoff);
    } catch (err) {
      const details = (err as SvError).details as { httpStatus?: unknown } | undefined;
      if (!hasCode(err, 'SV_ERR_BACKEND_IO') || details?.httpStatus !== 501) throw err;
      listed = false;
    }
    for (const [uploadId, { key, ms }] of this.#leftovers) {
      if (ms > cutoff) continue;
      this.#leftovers.delete(uploadId);
      if (listed) continue; // the listing above has seen it
      await this.#send('AbortMultipartUpload', key, new AbortMultipartUploadCommand({ Bucket: this.ref.bucket, Key: key, UploadId: uploadId }))
        .then(() => { removed++; }, (err: unknown) => { if (!hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw err; });
    }
    // Conditional-write probes a killed open left behind.
    for await (const o of this.#listRaw(`${this.ref.prefix}${PROBE}`)) {
      if (o.createdMs <= cutoff) { await deleteAllVersions(this.#client, this.ref.bucket, o.key); removed++; }
    }
    return removed;
  }



  async *#listRaw(prefix: string): AsyncIterable<{ key: string; createdMs: number }> {
    let token: string | undefined;
    do {
      const page = await this.#send<{ Contents?: { Key?: string; LastModified?: Date }[]; IsTruncated?: boolean; NextContinuationToken?: string }>(
        'LIST', prefix, new ListObjectsV2Command({ Bucket: this.ref.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) if (o.Key) yield { key: o.Key, createdMs: o.LastModified?.getTime() ?? 0 };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Requests sent so far by S3 operation name (for benchmarks and request budgets: PUT/GET/LIST per point). */
  requestCounts(): Record<string, number> {
    return Object.fromEntries(this.#requests);
  }

  /** For s3-lock.ts: the client and full key of a store key, with the write checks done. */
  forRetention(key: string): { client: S3Client; bucket: string; key: string } {
    const full = this.#full(key);
    this.#writable(`extend the retention of ${key}`);
    return { client: this.#client, bucket: this.ref.bucket, key: full };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#putQueue.values()]);
    await this.#lease?.release().catch(() => {});
    this.#ranged?.close();
    this.#client.destroy();
  }
}

// Opened by reference (openBackend): credentials from the SDK's default chain; the writer lease taken by the
// process's main thread only (worker threads opening the same ref for writing share it). The wrappers (rate,
// retry, cache) are stacked in one place: open.ts.
registerBackend('s3', (ref) => S3Backend.open(ref, { lease: isMainThread }));
