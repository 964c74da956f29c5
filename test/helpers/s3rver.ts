/**
 * s3rver (npm, a small S3 implementation over a folder) on 127.0.0.1:<free port>, in the test's own process,
 * its data in a private temp folder; closed in teardown. It checks SigV4 signatures with its fixed key pair
 * S3RVER/S3RVER. What it does not do (so S3Backend must cope, and the Ceph tests cover the real behaviour):
 * If-None-Match on PUT, Content-MD5 checks, Object Lock, versioning, ListMultipartUploads, S3's multipart
 * ETag form, and listings of more than one page (its continuation tokens use DES, which OpenSSL 3 refuses:
 * keep listings here under 1000 keys).
 *
 * One defect of s3rver is repaired here, because S3 itself never shows it and the contract suite checks it:
 * s3rver rewrites an object's content file in place and its metadata file after it (and answers a PUT of a
 * buffer before the write ends), so a GET during a PUT of the same key can return a torn object. The harness
 * makes each object's writes land by rename and runs the store calls of one key one at a time, which gives
 * S3's "a reader sees the old or the new object" behaviour. Nothing else of s3rver is changed.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash, randomBytes } from 'node:crypto';
import S3rver from 's3rver';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { tempDir } from './env.js';
import type { S3BackendRef } from '../../storage/backend/types.js';
import type { S3Credentials } from '../../storage/backend/s3.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface S3Server {
  readonly endpoint: string;
  readonly credentials: S3Credentials;
  /** A fresh bucket on this server. */
  bucket(name: string, opts?: { objectLock?: boolean }): Promise<void>;
  /** A reference to `bucket`/`prefix` on this server. */
  ref(bucket: string, prefix?: string, extra?: Partial<S3BackendRef>): S3BackendRef;
  /** A raw client (for tests that look past the backend: multipart uploads, object versions). */
  client(credentials?: S3Credentials): S3Client;
}

/** What both harnesses share: refs, buckets and raw clients on an endpoint with given credentials. */
export function s3ServerAt(t: Teardown, endpoint: string, credentials: S3Credentials): S3Server {
  const client = (creds: S3Credentials = credentials): S3Client => {
    const c = new S3Client({
      endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...creds }, maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    t.teardown(() => c.destroy());
    return c;
  };
  const admin = client();
  return {
    endpoint,
    credentials,
    async bucket(name, opts = {}) {
      await admin.send(new CreateBucketCommand({ Bucket: name, ...(opts.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
    },
    ref: (bucket, prefix = '', extra = {}) => ({
      kind: 's3', bucket, prefix, endpoint, region: 'us-east-1', forcePathStyle: true, rateLimit: 0, objectLock: null, readOnly: false, ...extra,
    }),
    client,
  };
}

/** The slice of s3rver's FilesystemStore the repair touches (it is untyped JavaScript). */
interface FsStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  [method: string]: unknown;
}

/** Atomic object writes and one store call at a time per key (see the header). */
function repairStore(store: FsStore): void {
  const queues = new Map<string, Promise<unknown>>();
  const serial = <T>(id: string, fn: () => Promise<T>): Promise<T> => {
    const run = (queues.get(id) ?? Promise.resolve()).catch(() => {}).then(fn);
    queues.set(id, run);
    void run.finally(() => { if (queues.get(id) === run) queues.delete(id); }).catch(() => {});
    return run;
  };
  store.putObject = async (object: { bucket: string; key: string; content: Buffer | Readable; metadata: unknown }) => serial(`${object.bucket}/${object.key}`, async () => {
    const path = store.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    const md5 = createHash('md5');
    let size = 0;
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    await pipeline(source, async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) { md5.update(chunk); size += chunk.length; yield chunk; }
    }, createWriteStream(tmp));
    const digest = md5.digest('hex');
    await rename(tmp, path);
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  });
  // (Not getMetadata: getObject calls it, and the queue is not re-entrant.)
  for (const name of ['getObject', 'deleteObject']) {
    const original = (store[name] as (...args: unknown[]) => Promise<unknown>).bind(store);
    store[name] = (bucket: string, key: string, ...rest: unknown[]) => serial(`${bucket}/${key}`, () => original(bucket, key, ...rest));
  }
}

/** Start s3rver for this test; stopped in teardown. */
export async function startS3rver(t: Teardown): Promise<S3Server> {
  const dir = tempDir(t, 'sv-s3rver-');
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true });
  repairStore((server as unknown as { store: FsStore }).store);
  const { port } = await server.run();
  t.teardown(() => server.close());
  return s3ServerAt(t, `http://127.0.0.1:${port}`, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
}
