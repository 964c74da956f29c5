/**
 * Deleting from S3 and aborting incomplete uploads, for S3Backend (s3.ts).
 * - deleteAllVersions: on a versioned bucket (Object Lock needs versioning) a plain DeleteObject only hides the
 *   object behind a delete marker and, for a replaced object, exposes its previous version; so every version
 *   of the key (and every delete marker) is removed by version id. An object under retention or a legal hold
 *   throws SV_ERR_BACKEND_LOCKED before anything is removed (HEAD shows the lock), or when the server refuses a
 *   version's delete (AccessDenied on a versioned delete = the lock). A missing key is not an error.
 * - abortUploads: ListMultipartUploads under the prefix, AbortMultipartUpload those initiated before the cutoff.
 */
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand,
  type HeadObjectCommandOutput, type S3Client,
} from '@aws-sdk/client-s3';
import { hasCode, SvError } from '../../src/errors/index.js';
import { s3Send } from './s3-errors.js';

/** Remove `full` (every version of it on a versioned bucket); LOCKED if retention or a legal hold keeps it. */
export async function deleteAllVersions(client: S3Client, bucket: string, full: string): Promise<void> {
  let head: HeadObjectCommandOutput;
  try {
    head = await s3Send(client, { op: 'HEAD', bucket, key: full }, new HeadObjectCommand({ Bucket: bucket, Key: full }));
  } catch (err) {
    if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) return;
    throw err;
  }
  const locked = (until: Date | undefined, hold: string | undefined): SvError => new SvError('SV_ERR_BACKEND_LOCKED', `s3://${bucket}/${full} is under Object Lock${until ? ` until ${until.toISOString()}` : ''}${hold === 'ON' ? ' (legal hold)' : ''}; it stays`, {
    bucket, key: full, retainUntil: until?.toISOString() ?? null, legalHold: hold === 'ON',
  });
  if ((head.ObjectLockRetainUntilDate && head.ObjectLockRetainUntilDate.getTime() > Date.now()) || head.ObjectLockLegalHoldStatus === 'ON') {
    throw locked(head.ObjectLockRetainUntilDate, head.ObjectLockLegalHoldStatus);
  }
  const versions: string[] = [];
  if (head.VersionId && head.VersionId !== 'null') {
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      const page = await s3Send<{ Versions?: { Key?: string; VersionId?: string }[]; DeleteMarkers?: { Key?: string; VersionId?: string }[]; IsTruncated?: boolean; NextKeyMarker?: string; NextVersionIdMarker?: string }>(
        client, { op: 'ListObjectVersions', bucket, key: full }, new ListObjectVersionsCommand({ Bucket: bucket, Prefix: full, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
      );
      for (const v of [...page.Versions ?? [], ...page.DeleteMarkers ?? []]) if (v.Key === full && v.VersionId) versions.push(v.VersionId);
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionMarker = page.NextVersionIdMarker;
    } while (keyMarker);
  }
  for (const versionId of versions.length ? versions : [undefined]) {
    try {
      await s3Send(client, { op: 'DELETE', bucket, key: full }, new DeleteObjectCommand({ Bucket: bucket, Key: full, ...(versionId ? { VersionId: versionId } : {}) }));
    } catch (err) {
      if (hasCode(err, 'SV_ERR_BACKEND_ACCESS_DENIED') && versionId) throw locked(head.ObjectLockRetainUntilDate, head.ObjectLockLegalHoldStatus);
      throw err;
    }
  }
}

/** Abort the incomplete uploads under the prefix initiated before `cutoff`; how many. */
export async function abortUploads(client: S3Client, bucket: string, prefix: string, cutoff: number): Promise<number> {
  let removed = 0;
  let keyMarker: string | undefined;
  let uploadMarker: string | undefined;
  do {
    const page = await s3Send<{ Uploads?: { Key?: string; UploadId?: string; Initiated?: Date }[]; IsTruncated?: boolean; NextKeyMarker?: string; NextUploadIdMarker?: string }>(
      client, { op: 'ListMultipartUploads', bucket, key: prefix },
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadMarker }),
    );
    for (const u of page.Uploads ?? []) {
      if (!u.Key || !u.UploadId || (u.Initiated && u.Initiated.getTime() > cutoff)) continue;
      await s3Send(client, { op: 'AbortMultipartUpload', bucket, key: u.Key }, new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      removed++;
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    uploadMarker = page.NextUploadIdMarker;
  } while (keyMarker);
  return removed;
}