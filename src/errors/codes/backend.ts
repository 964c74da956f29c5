import type { ErrorTable } from '../spec.js';

/**
 * Errors of the storage backends under the volume store (storage/backend/: the folder backend, S3 and the
 * wrappers). TRANSIENT is the only one the retry wrapper retries; the others are final.
 */
export const BACKEND_ERRORS = {
  SV_ERR_BACKEND_EXISTS: { status: 409, summary: 'A create-only put named an object that already exists; the existing object is unchanged.' },
  SV_ERR_BACKEND_NOT_FOUND: { status: 404, summary: 'The backend has no object under that key.' },
  SV_ERR_BACKEND_SHORT_READ: { status: 500, summary: 'A ranged read asked for bytes past the end of the object (the object is shorter than the store expects).' },
  SV_ERR_BACKEND_BAD_KEY: { status: 400, summary: 'An object key is not 1-8 segments of [A-Za-z0-9._-] separated by \'/\' (no \'.\' or \'..\' segment, no leading or trailing \'/\').' },
  SV_ERR_BACKEND_TRANSIENT: { status: 503, summary: 'A request failed in a way that may succeed when retried (5xx, throttling, a reset connection, a timeout); the retry wrapper retries it.' },
  SV_ERR_BACKEND_GAVE_UP: { status: 503, summary: 'A request kept failing with transient errors and the retry wrapper gave up after its bounded number of attempts (details.attempts; the last error is the cause).' },
  SV_ERR_BACKEND_IO: { status: 500, summary: 'A request to the backend failed and retrying will not help (the message names the object and the cause).' },
  SV_ERR_BACKEND_LOCKED: { status: 409, summary: 'The object is under retention (S3 Object Lock) and cannot be deleted or overwritten before its retention date.' },
  SV_ERR_BACKEND_READ_ONLY: { status: 409, summary: 'The store was opened read-only (e.g. a second appliance on the same bucket): writes and deletes are refused.' },
  SV_ERR_BACKEND_BAD_URL: { status: 400, summary: 'A store location is neither a folder path nor a valid s3://BUCKET/PREFIX?endpoint=URL&region=R URL (the message names the part that is wrong).' },
  SV_ERR_BACKEND_UNAVAILABLE: { status: 501, summary: 'The kind of backend the store location names is not available in this build (its module did not register an opener).' },
  SV_ERR_BACKEND_AUTH: { status: 401, summary: 'The object store refused the credentials (unknown access key, bad signature, expired token); credentials are never shown.' },
  SV_ERR_BACKEND_NO_CREDENTIALS: { status: 401, summary: 'No credentials were found for the object store (AWS environment variables or the shared credentials file).' },
  SV_ERR_BACKEND_NO_BUCKET: { status: 404, summary: 'The bucket named in the store URL does not exist.' },
  SV_ERR_BACKEND_ACCESS_DENIED: { status: 403, summary: 'The credentials are valid but not allowed to do this on the bucket or object.' },
  SV_ERR_BACKEND_LEASE_HELD: { status: 409, summary: 'Another appliance holds the writer lease on this store; open it read-only to list and restore, or wait for the lease to expire.' },
  SV_ERR_BACKEND_LEASE_LOST: { status: 409, summary: 'Another appliance took over this appliance\'s writer lease (lease/writer.json) while the store was open for writing; every later write is refused.' },
  SV_ERR_BACKEND_CHECKSUM: { status: 502, summary: 'An upload or download failed its integrity check (the checksum the store computed differs from the object store\'s).' },
  SV_ERR_BACKEND_OBJECT_LOCK: { status: 400, summary: 'Object Lock was asked for but the bucket does not have it enabled (create the bucket with Object Lock and versioning on).' },
  SV_ERR_BACKEND_FAULT: { status: 500, summary: 'A failure injected by the fault wrapper (tests only), standing for a final backend error.' },
} as const satisfies ErrorTable;
