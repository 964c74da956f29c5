/**
 * S3 answers → coded errors. The SDK throws `S3ServiceException`s (`name` = the S3 error code, `$metadata.
 * httpStatusCode`) or Node network errors (`code` ECONNRESET...). The mapping, in order:
 *   NoSuchKey / NotFound / 404 on an object        → SV_ERR_BACKEND_NOT_FOUND
 *   NoSuchBucket                                   → SV_ERR_BACKEND_NO_BUCKET
 *   no credentials in the SDK's default chain      → SV_ERR_BACKEND_NO_CREDENTIALS
 *   InvalidAccessKeyId / SignatureDoesNotMatch ... → SV_ERR_BACKEND_AUTH
 *   AccessDenied / 403                             → SV_ERR_BACKEND_ACCESS_DENIED
 *   PreconditionFailed (If-None-Match: *)          → SV_ERR_BACKEND_EXISTS
 *   InvalidRange (416)                             → SV_ERR_BACKEND_SHORT_READ
 *   BadDigest / XAmzContentSHA256Mismatch          → SV_ERR_BACKEND_CHECKSUM (the body changed on the way)
 *   NotImplemented (501)                           → SV_ERR_BACKEND_IO (final)
 *   5xx, SlowDown, throttling, resets, timeouts    → SV_ERR_BACKEND_TRANSIENT
 *   anything else                                  → SV_ERR_BACKEND_IO
 * Messages name the operation, bucket and key and the server's error name; never a credential (the SDK's own
 * message is not copied for auth failures, it can echo the access key id or the string to sign).
 */
import { SvError, type SvErrorCode } from '../../src/errors/index.js';

export interface S3Target {
  readonly op: string;
  readonly bucket: string;
  readonly key?: string;
}

const AUTH = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired',
  'AuthorizationHeaderMalformed', 'RequestTimeTooSkewed', 'InvalidClientTokenId']);
const THROTTLE = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests',
  'RequestThrottled', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeoutException', 'TimeoutError',
  'ServerError', 'BadGateway', 'GatewayTimeout']);
const NET = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED',
  'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE']);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
  cause?: unknown;
}

function classify(e: SdkError): { code: SvErrorCode; what: string } {
  const name = e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const sys = e.code ?? (e.cause as SdkError | undefined)?.code ?? '';
  if (name === 'NoSuchKey' || name === 'NotFound') return { code: 'SV_ERR_BACKEND_NOT_FOUND', what: 'no such object' };
  if (name === 'NoSuchBucket') return { code: 'SV_ERR_BACKEND_NO_BUCKET', what: 'no such bucket' };
  if (name === 'CredentialsProviderError') return { code: 'SV_ERR_BACKEND_NO_CREDENTIALS', what: 'no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials)' };
  if (AUTH.has(name)) return { code: 'SV_ERR_BACKEND_AUTH', what: `credentials refused (${name})` };
  if (name === 'AccessDenied' || name === 'Forbidden' || (status === 403 && !name.includes('Signature'))) {
    return { code: 'SV_ERR_BACKEND_ACCESS_DENIED', what: `access denied (${name || 'HTTP 403'})` };
  }
  if (name === 'PreconditionFailed' || status === 412) return { code: 'SV_ERR_BACKEND_EXISTS', what: 'the object already exists' };
  if (name === 'InvalidRange' || status === 416) return { code: 'SV_ERR_BACKEND_SHORT_READ', what: 'range past the end of the object' };
  if (name === 'BadDigest' || name === 'InvalidDigest' || name === 'XAmzContentSHA256Mismatch') return { code: 'SV_ERR_BACKEND_CHECKSUM', what: `the server refused the upload's checksum (${name})` };
  if (name === 'NotImplemented' || status === 501) return { code: 'SV_ERR_BACKEND_IO', what: `this S3 server does not implement the request (${name || 'HTTP 501'})` };
  if (THROTTLE.has(name) || (status !== undefined && (status >= 500 || status === 429)) || NET.has(sys) || NET.has(name)
    || name === 'AbortError' || /socket hang up|ECONNRESET|premature close|aborted/iu.test(e.message ?? '')) {
    return { code: 'SV_ERR_BACKEND_TRANSIENT', what: `transient failure (${name || sys || `HTTP ${status}`})` };
  }
  if (status === 404) return { code: 'SV_ERR_BACKEND_NOT_FOUND', what: 'not found (HTTP 404)' };
  return { code: 'SV_ERR_BACKEND_IO', what: `request failed (${name || sys || 'unknown error'}${status ? `, HTTP ${status}` : ''})` };
}

/** The coded error for an SDK failure of `target` (an SvError passes through unchanged). */
export function s3Error(err: unknown, target: S3Target): SvError {
  if (err instanceof SvError) return err;
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkError;
  const { code, what } = classify(e);
  const where = `s3://${target.bucket}/${target.key ?? ''}`;
  return new SvError(code, `S3 ${target.op} ${where}: ${what}`, {
    op: target.op, bucket: target.bucket, key: target.key ?? null, s3Error: e.name ?? e.code ?? null,
    httpStatus: e.$metadata?.httpStatusCode ?? null,
  });
}

/** One request on `client`, its failure coded for `target`. (`cmd` is any S3 command; T its output type.) */
export async function s3Send<T = unknown>(client: { send(cmd: never): Promise<unknown> }, target: S3Target, cmd: object): Promise<T> {
  try {
    return await client.send(cmd as never) as T;
  } catch (err) {
    throw s3Error(err, target);
  }
}
