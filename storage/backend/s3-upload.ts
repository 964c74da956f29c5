/**
 * Uploading one immutable object to S3, verified. Small bodies go up in one PutObject; bodies of at least
 * `multipartThreshold` bytes (closed packs, up to 64 MiB) as a multipart upload of `partSize` parts (≥ 8 MiB
 * by default; S3 needs ≥ 5 MiB but the last), `concurrency` parts in flight.
 *
 * Integrity: every request body carries Content-MD5, which S3, Ceph RGW and MinIO check (BadDigest) before
 * they store it (the parts of a body in memory, a pack: hashed in one native pass before the first part goes,
 * several parts per SIMD pass, src/native md5Parts; a file's parts: each as it is read); each UploadPart's answer (its ETag, the part's MD5) is compared with what was sent. After the
 * upload a HeadObject must report the size sent and, where the ETag has S3's well-known form, the ETag we
 * computed (single part: the MD5; multipart: MD5 of the parts' binary MD5s, "-N"). Ceph 16 answers
 * CompleteMultipartUpload with an empty ETag, so that answer is never relied on; the HEAD is. A mismatch
 * removes the object and throws SV_ERR_BACKEND_CHECKSUM, so a put that resolves stored exactly these bytes.
 *
 * Create-only: with `conditional` (the server honours `If-None-Match: *` on PutObject, probed at open) the
 * PutObject carries it and the server refuses a second writer atomically (412 → EXISTS). Without it (s3rver,
 * older servers) a HeadObject before the PUT refuses an existing key. Multipart uploads always HEAD before
 * CreateMultipartUpload and again before CompleteMultipartUpload (which also carries If-None-Match: * for
 * servers that honour it there, as AWS does): Ceph RGW 16 ignores the header on Complete. The HEAD check
 * check races with another writer of the same key between the HEAD and the PUT; it is safe here because a
 * store has one writer (the writer lease) and that writer serialises puts of the same key (S3Backend's
 * per-key queue), and the keys of immutable objects are content- or sequence-named, so two different bodies
 * never race for one key.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  HeadObjectCommand, PutObjectCommand, UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { hasCode, SvError } from '../../src/errors/index.js';
import { md5Parts } from '../../src/native/index.js';
import { Limit } from './limit.js';
import { s3Error } from './s3-errors.js';
import type { ObjectBody } from './types.js';

export interface UploadTarget {
  readonly client: S3Client;
  readonly bucket: string;
  /** The full object key (store prefix included). */
  readonly key: string;
  /** Retention to write with the object (Object Lock), or null. */
  readonly lock: { readonly mode: 'COMPLIANCE' | 'GOVERNANCE'; readonly until: Date } | null;
  /** The server honours If-None-Match: * (else HEAD-before-PUT). */
  readonly conditional: boolean;
  /** Told of a multipart upload that could not be aborted after a failure (for cleanup). */
  readonly leftover?: (key: string, uploadId: string) => void;
}

export interface UploadTuning {
  readonly multipartThreshold: number;
  readonly partSize: number;
  readonly concurrency: number;
}

/** The body as ranges to read: bytes in memory or a local file. */
interface Source {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** A buffer `read` returned, no longer used (its request succeeded): a file source reuses it. */
  release(buf: Buffer): void;
  /** Bytes in memory: the MD5 of each `partSize` part, 16 bytes each, in one native pass. */
  partMd5s?(partSize: number): Buffer;
  close(): Promise<void>;
}

/**
 * Part buffers of file uploads, kept for the next part instead of a fresh 8 MiB allocation each (the garbage
 * of those, external to V8's heap, cost the uploading thread about as much again in collections). A buffer
 * comes back only after its UploadPart succeeded: the server answered, so the request wrote it whole and
 * holds no reference. At most FREE_PARTS are kept.
 */
const freeParts: Buffer[] = [];
const FREE_PARTS = 16;

function takeBuffer(length: number): Buffer {
  const i = freeParts.findIndex((b) => b.length === length);
  return i >= 0 ? freeParts.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(length);
}

async function sourceOf(body: ObjectBody): Promise<Source> {
  if (body instanceof Uint8Array) {
    const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return {
      size: buf.length, read: async (o, l) => buf.subarray(o, o + l), release: () => {}, close: async () => {},
      partMd5s: (partSize) => md5Parts(buf, partSize),
    };
  }
  const fh: FileHandle = await open(body.file, 'r');
  const { size } = await fh.stat();
  return {
    size,
    async read(offset, length) {
      const buf = takeBuffer(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new SvError('SV_ERR_BACKEND_IO', `${body.file} shrank while being uploaded`, { file: body.file });
        done += bytesRead;
      }
      return buf;
    },
    release(buf) {
      if (freeParts.length < FREE_PARTS) freeParts.push(buf);
    },
    close: () => fh.close(),
  };
}

const md5 = (b: Uint8Array): Buffer => createHash('md5').update(b).digest();
const unquote = (etag: string | undefined): string => (etag ?? '').replace(/^"|"$/gu, '').toLowerCase();

async function refuseExisting(t: UploadTarget): Promise<void> {
  try {
    await t.client.send(new HeadObjectCommand({ Bucket: t.bucket, Key: t.key }));
  } catch (err) {
    const coded = s3Error(err, { op: 'HEAD', bucket: t.bucket, key: t.key });
    if (hasCode(coded, 'SV_ERR_BACKEND_NOT_FOUND')) return;
    throw coded;
  }
  throw exists(t);
}

function exists(t: UploadTarget): SvError {
  return new SvError('SV_ERR_BACKEND_EXISTS', `s3://${t.bucket}/${t.key} already exists (objects are create-only)`, { bucket: t.bucket, key: t.key });
}

function lockParams(t: UploadTarget): { ObjectLockMode?: 'COMPLIANCE' | 'GOVERNANCE'; ObjectLockRetainUntilDate?: Date } {
  return t.lock ? { ObjectLockMode: t.lock.mode, ObjectLockRetainUntilDate: t.lock.until } : {};
}

/** HEAD after upload: size and (when it has the well-known form) ETag must be what was sent. */
async function verify(t: UploadTarget, size: number, expectEtag: string): Promise<void> {
  const head = await t.client.send(new HeadObjectCommand({ Bucket: t.bucket, Key: t.key }))
    .catch((err: unknown) => { throw s3Error(err, { op: 'HEAD', bucket: t.bucket, key: t.key }); });
  const etag = unquote(head.ETag);
  const sizeOk = head.ContentLength === size;
  const wellKnown = /^[0-9a-f]{32}(-\d+)?$/u.test(etag) && expectEtag.includes('-') === etag.includes('-');
  if (sizeOk && (!wellKnown || etag === expectEtag)) return;
  await t.client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: t.key })).catch(() => {});
  throw new SvError('SV_ERR_BACKEND_CHECKSUM', `s3://${t.bucket}/${t.key} does not verify after upload: sent ${size} bytes (ETag ${expectEtag}), the server reports ${head.ContentLength} bytes (ETag ${etag || 'none'}); removed`, {
    bucket: t.bucket, key: t.key, sentSize: size, storedSize: head.ContentLength ?? null, sentEtag: expectEtag, storedEtag: etag,
  });
}

async function putSingle(t: UploadTarget, src: Source): Promise<void> {
  const body = await src.read(0, src.size);
  const digest = md5(body);
  if (!t.conditional) await refuseExisting(t);
  try {
    await t.client.send(new PutObjectCommand({
      Bucket: t.bucket, Key: t.key, Body: body, ContentLength: body.length, ContentMD5: digest.toString('base64'),
      ...(t.conditional ? { IfNoneMatch: '*' } : {}), ...lockParams(t),
    }));
  } catch (err) {
    const coded = s3Error(err, { op: 'PUT', bucket: t.bucket, key: t.key });
    throw hasCode(coded, 'SV_ERR_BACKEND_EXISTS') ? exists(t) : coded;
  }
  await verify(t, body.length, digest.toString('hex'));
}

async function putMultipart(t: UploadTarget, src: Source, tune: UploadTuning): Promise<void> {
  await refuseExisting(t); // always: Ceph RGW 16 ignores If-None-Match on CompleteMultipartUpload
  const created = await t.client.send(new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, ...lockParams(t) }))
    .catch((err: unknown) => { throw s3Error(err, { op: 'CreateMultipartUpload', bucket: t.bucket, key: t.key }); });
  const uploadId = created.UploadId;
  if (!uploadId) throw new SvError('SV_ERR_BACKEND_IO', `S3 CreateMultipartUpload s3://${t.bucket}/${t.key}: no UploadId in the answer`, { bucket: t.bucket, key: t.key });
  const count = Math.max(1, Math.ceil(src.size / tune.partSize));
  const digests: Buffer[] = new Array<Buffer>(count);
  const limit = new Limit(tune.concurrency);
  const known = src.partMd5s?.(tune.partSize);
  try {
    await Promise.all(Array.from({ length: count }, (_, i) => limit.run(async () => {
      const offset = i * tune.partSize;
      const part = await src.read(offset, Math.min(tune.partSize, src.size - offset));
      const digest = known ? known.subarray(16 * i, 16 * i + 16) : md5(part);
      const answer = await t.client.send(new UploadPartCommand({
        Bucket: t.bucket, Key: t.key, UploadId: uploadId, PartNumber: i + 1, Body: part, ContentLength: part.length,
        ContentMD5: digest.toString('base64'),
      })).catch((err: unknown) => { throw s3Error(err, { op: `UploadPart ${i + 1}/${count}`, bucket: t.bucket, key: t.key }); });
      if (unquote(answer.ETag) !== digest.toString('hex')) {
        throw new SvError('SV_ERR_BACKEND_CHECKSUM', `s3://${t.bucket}/${t.key} part ${i + 1}: the server's ETag ${unquote(answer.ETag)} is not the part's MD5 ${digest.toString('hex')}`, {
          bucket: t.bucket, key: t.key, part: i + 1,
        });
      }
      digests[i] = digest;
      src.release(part);
    })));
    await refuseExisting(t);
    await t.client.send(new CompleteMultipartUploadCommand({
      Bucket: t.bucket, Key: t.key, UploadId: uploadId, ...(t.conditional ? { IfNoneMatch: '*' } : {}),
      MultipartUpload: { Parts: digests.map((d, i) => ({ PartNumber: i + 1, ETag: `"${d.toString('hex')}"` })) },
    })).catch((err: unknown) => {
      const coded = s3Error(err, { op: 'CompleteMultipartUpload', bucket: t.bucket, key: t.key });
      throw hasCode(coded, 'SV_ERR_BACKEND_EXISTS') ? exists(t) : coded;
    });
  } catch (err) {
    // Best effort: what is left is an incomplete upload, which list() never shows and cleanup() aborts.
    await t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId: uploadId }))
      .catch(() => t.leftover?.(t.key, uploadId));
    throw err;
  }
  await verify(t, src.size, `${md5(Buffer.concat(digests)).toString('hex')}-${count}`);
}

/** Upload `body` to `t.key`, create-only and verified; resolves once the object is stored whole. */
export async function uploadObject(t: UploadTarget, body: ObjectBody, tune: UploadTuning): Promise<void> {
  const src = await sourceOf(body).catch((err: unknown) => {
    throw new SvError('SV_ERR_BACKEND_IO', `cannot read the body of s3://${t.bucket}/${t.key}: ${(err as Error).message}`, { bucket: t.bucket, key: t.key }, { cause: err });
  });
  try {
    if (src.size >= tune.multipartThreshold) await putMultipart(t, src, tune);
    else await putSingle(t, src);
  } finally {
    await src.close();
  }
}
