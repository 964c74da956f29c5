import type { ErrorTable } from '../spec.js';

/**
 * Errors of the storage backends (storage/backend/): the object store under the volume store. Written by the
 * S3 backend's branch ahead of the shared table (codes/backend.ts); codes both define are folded into one at
 * merge. Messages name the bucket and key (or folder and path), never credentials.
 */
export const BACKEND_S3_ERRORS = {
  SV_ERR_BACKEND_EXISTS: { status: 409, summary: 'A create-only put found an object already under that key; the existing object is unchanged.' },
  SV_ERR_BACKEND_NOT_FOUND: { status: 404, summary: 'No object under that key in the backend.' },
  SV_ERR_BACKEND_SHORT_READ: { status: 422, summary: 'A ranged read asked for bytes past the end of the object; the backend never returns fewer bytes than asked.' },
  SV_ERR_BACKEND_TRANSIENT: { status: 503, summary: 'A failure that may pass when retried: a 5xx answer, throttling (SlowDown), a connection reset or timeout. The retry wrapper retries it with backoff.' },
  SV_ERR_BACKEND_AUTH: { status: 401, summary: 'The object store refused the credentials: unknown access key or a signature that does not match (wrong secret key, clock skew).' },
  SV_ERR_BACKEND_NO_BUCKET: { status: 404, summary: 'The bucket named in the store URL does not exist at that endpoint.' },
  SV_ERR_BACKEND_ACCESS_DENIED: { status: 403, summary: 'The credentials are valid but may not do this to that bucket or key (bucket policy, IAM).' },
  SV_ERR_BACKEND_LOCKED: { status: 409, summary: 'The object is under Object Lock retention (or legal hold) and cannot be deleted before its retention ends; it stays.' },
  SV_ERR_BACKEND_LEASE_HELD: { status: 409, summary: 'Another appliance holds the store\'s writer lease (lease/writer.json) and it has not expired; details name the holder and the expiry. Open read-only instead, or wait.' },
  SV_ERR_BACKEND_LEASE_LOST: { status: 409, summary: 'This appliance\'s writer lease was taken over by another writer while it was open; it stops writing.' },
  SV_ERR_BACKEND_READ_ONLY: { status: 409, summary: 'A write (put, replace, delete, cleanup, retention) on a backend opened read-only.' },
  SV_ERR_BACKEND_CHECKSUM: { status: 502, summary: 'An uploaded object or part does not verify: the size or checksum the object store reports differs from what was sent. The object is removed and the put fails.' },
  SV_ERR_BACKEND_BAD_URL: { status: 400, summary: 'A store URL (s3://BUCKET/PREFIX?endpoint=URL&region=R...) is malformed: bad bucket name, prefix, endpoint, query parameter or value.' },
  SV_ERR_BACKEND_BAD_KEY: { status: 400, summary: 'An object key is not 1-8 segments of [A-Za-z0-9._-] separated by \'/\' (no \'.\' or \'..\' segment, no leading or trailing \'/\').' },
  SV_ERR_BACKEND_IO: { status: 502, summary: 'The object store answered a request with an error that is neither transient nor one of the coded refusals; details carry its error name and HTTP status.' },
} as const satisfies ErrorTable;
