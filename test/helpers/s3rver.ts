/**
 * s3rver (npm, a small S3 implementation over a folder) on 127.0.0.1:<free port>, in the test's own process,
 * its data in a private temp folder; closed in teardown. It checks SigV4 signatures with its fixed key pair
 * S3RVER/S3RVER. What it does not do (so S3Backend must cope, and the Ceph tests cover the real behaviour):
 * If-None-Match on PUT, Content-MD5 checks, Object Lock, versioning, S3's multipart ETag form.
 */
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

/** Start s3rver for this test; stopped in teardown. */
export async function startS3rver(t: Teardown): Promise<S3Server> {
  const dir = tempDir(t, 'sv-s3rver-');
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true });
  const { port } = await server.run();
  t.teardown(() => server.close());
  return s3ServerAt(t, `http://127.0.0.1:${port}`, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
}
