/**
 * The S3 store URL: `s3://BUCKET/PREFIX?endpoint=URL&region=R` ⇄ `S3BackendRef`. Query parameters (all
 * optional): `endpoint` (http(s) URL of an S3-compatible server; absent: AWS), `region` (default us-east-1),
 * `pathStyle` (1/0; default 1 with an endpoint, 0 on AWS), `rate` (requests per second, 0 = no limit),
 * `lock` (Object Lock retention for every immutable object: `COMPLIANCE:DAYS` or `GOVERNANCE:DAYS`),
 * `readOnly` (1: list and restore only, no writer lease). Credentials never go in the URL: they come from the
 * AWS SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/credentials).
 */
import { SvError } from '../../src/errors/index.js';
import type { S3BackendRef } from './types.js';

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/u;
const PREFIX_SEGMENT = /^[A-Za-z0-9._-]+$/u;
const PARAMS = new Set(['endpoint', 'region', 'pathStyle', 'rate', 'lock', 'readOnly']);

function bad(url: string, problem: string): SvError {
  return new SvError('SV_ERR_BACKEND_BAD_URL', `bad store URL ${JSON.stringify(url)}: ${problem}`, { url, problem });
}

function flag(url: string, name: string, value: string): boolean {
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  throw bad(url, `${name} must be 1 or 0, not ${JSON.stringify(value)}`);
}

/** Parse `s3://BUCKET[/PREFIX][?query]`; the prefix comes back '' or ending with '/'. */
export function parseS3Url(url: string): S3BackendRef {
  if (!url.startsWith('s3://')) throw bad(url, 'it does not start with s3://');
  if (/[@]/u.test(url.slice(5, url.indexOf('?') < 0 ? undefined : url.indexOf('?')))) {
    throw bad(url, 'credentials do not go in the URL: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile');
  }
  const q = url.indexOf('?');
  const path = url.slice(5, q < 0 ? undefined : q);
  const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const slash = path.indexOf('/');
  const bucket = slash < 0 ? path : path.slice(0, slash);
  if (!BUCKET.test(bucket) || bucket.includes('..')) throw bad(url, `bucket name ${JSON.stringify(bucket)} is not 3-63 characters of a-z 0-9 . -`);
  const segments = (slash < 0 ? '' : path.slice(slash + 1)).split('/').filter((s) => s !== '');
  for (const s of segments) {
    if (!PREFIX_SEGMENT.test(s) || s === '.' || s === '..') throw bad(url, `prefix segment ${JSON.stringify(s)} is not [A-Za-z0-9._-]`);
  }
  for (const name of query.keys()) if (!PARAMS.has(name)) throw bad(url, `unknown parameter ${JSON.stringify(name)} (known: ${[...PARAMS].join(', ')})`);

  const endpointText = query.get('endpoint');
  let endpoint: string | null = null;
  if (endpointText !== null) {
    let u: URL;
    try { u = new URL(endpointText); } catch { throw bad(url, `endpoint ${JSON.stringify(endpointText)} is not a URL`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(url, 'endpoint must be http:// or https://');
    if (u.username || u.password) throw bad(url, 'credentials do not go in the endpoint URL');
    endpoint = u.origin;
  }
  const region = query.get('region') ?? 'us-east-1';
  if (!/^[a-z0-9-]{1,40}$/u.test(region)) throw bad(url, `region ${JSON.stringify(region)} is not a region name`);
  const pathStyleText = query.get('pathStyle');
  const forcePathStyle = pathStyleText === null ? endpoint !== null : flag(url, 'pathStyle', pathStyleText);
  const rateText = query.get('rate') ?? '0';
  const rateLimit = Number(rateText);
  if (!/^\d+$/u.test(rateText) || !Number.isSafeInteger(rateLimit)) throw bad(url, `rate ${JSON.stringify(rateText)} is not a whole number of requests per second`);
  const lockText = query.get('lock');
  let objectLock: S3BackendRef['objectLock'] = null;
  if (lockText !== null) {
    const m = /^(COMPLIANCE|GOVERNANCE):(\d{1,5})$/u.exec(lockText);
    if (!m || Number(m[2]) < 1) throw bad(url, `lock ${JSON.stringify(lockText)} is not COMPLIANCE:DAYS or GOVERNANCE:DAYS (days ≥ 1)`);
    objectLock = { mode: m[1] as 'COMPLIANCE' | 'GOVERNANCE', days: Number(m[2]) };
  }
  const readOnly = flag(url, 'readOnly', query.get('readOnly') ?? '0');
  return {
    kind: 's3', bucket, prefix: segments.length ? `${segments.join('/')}/` : '', endpoint, region, forcePathStyle,
    rateLimit, objectLock, readOnly,
  };
}

/** Where the bytes are, for messages: `s3://bucket/prefix` (no endpoint query, no credentials). */
export function s3Location(ref: S3BackendRef): string {
  return `s3://${ref.bucket}/${ref.prefix}`;
}

/** The URL that parses back to `ref` (for `serve` to hand to child processes, and for display). */
export function formatS3Url(ref: S3BackendRef): string {
  const q = new URLSearchParams();
  if (ref.endpoint !== null) q.set('endpoint', ref.endpoint);
  if (ref.region !== 'us-east-1') q.set('region', ref.region);
  if (ref.forcePathStyle !== (ref.endpoint !== null)) q.set('pathStyle', ref.forcePathStyle ? '1' : '0');
  if (ref.rateLimit) q.set('rate', String(ref.rateLimit));
  if (ref.objectLock) q.set('lock', `${ref.objectLock.mode}:${ref.objectLock.days}`);
  if (ref.readOnly) q.set('readOnly', '1');
  const qs = q.toString();
  return `${s3Location(ref)}${qs ? `?${qs}` : ''}`;
}
