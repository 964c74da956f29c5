/**
 * Fuzz of what the S3 backend decodes from outside: the SDK's failures (s3-errors.ts: any object, any name,
 * status and system code becomes a catalogued SV_ERR_BACKEND_* error, never a throw, never carrying the SDK's
 * own message, which can echo credentials) and the lease object (s3-lease.ts: any bytes in lease/writer.json,
 * checked on s3rver: garbage or a wrong shape is an expired lease and is taken over; a well-formed unexpired one
 * of another appliance is refused with LEASE_HELD; nothing else). 300 error shapes and 40 lease bodies by
 * default, SHADOWVAULT_SOAK=1 for 30x as many.
 */
import { randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { prng } from '../../bench/gen-disk.js';
import { hasCode, isSvError } from '../../src/errors/index.js';
import { s3Error } from '../../storage/backend/s3-errors.js';
import { startS3rver } from '../helpers/s3rver.js';
import { openOn } from './backend-s3-checks.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const SOAK = process.env.SHADOWVAULT_SOAK ? 30 : 1;

t.test('s3Error: every failure shape becomes a coded BACKEND error without the SDK message', async (t) => {
  const rnd = prng(13);
  const names = ['NoSuchKey', 'NotFound', 'NoSuchBucket', 'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'SlowDown',
    'InternalError', 'PreconditionFailed', 'InvalidRange', 'BadDigest', 'NotImplemented', 'CredentialsProviderError', 'TimeoutError', '', 'Weird\u0000Name'];
  const sys = ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EACCES', undefined];
  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  let bad = 0;
  for (let i = 0; i < 300 * SOAK; i++) {
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
    const shape = pick([
      () => ({ name: pick(names), message: `the string to sign contains ${secret}`, $metadata: { httpStatusCode: pick([200, 301, 400, 403, 404, 412, 416, 429, 500, 501, 503, undefined]) } }),
      () => ({ code: pick(sys), message: secret }),
      () => ({ cause: { code: pick(sys) }, message: secret }),
      () => pick([null, undefined, 42, 'string error', Symbol('s'), [], randomBytes(8)]),
      () => Object.assign(new Error(secret), { name: pick(names) }),
    ])();
    const e = s3Error(shape, { op: 'PUT', bucket: 'bkt', key: 'p/packs/00.pack' });
    const text = `${e.message} ${JSON.stringify(e.details)}`;
    if (!isSvError(e) || !e.code.startsWith('SV_ERR_BACKEND_') || text.includes(secret) || !text.includes('s3://bkt/p/packs/00.pack')) bad++;
  }
  t.equal(bad, 0, `${300 * SOAK} shapes: all coded SV_ERR_BACKEND_*, naming bucket and key, no SDK message`);
});

t.test('lease object: any bytes are an expired lease or a refusal, never a crash', async (t) => {
  const server = await startS3rver(t);
  await server.bucket('fuzz');
  const raw = server.client();
  const rnd = prng(7);
  const now = Date.now();
  const bodies = (): Buffer => {
    const good = { applianceId: 'appliance-z', host: 'h', pid: 1, token: 't', acquiredMs: now, expiresMs: now + 3_600_000 };
    const json = JSON.stringify(good);
    switch (Math.floor(rnd() * 5)) {
      case 0: return randomBytes(Math.floor(rnd() * 300));
      case 1: return Buffer.from(json.slice(0, Math.floor(rnd() * json.length)));
      case 2: { const b = Buffer.from(json); b[Math.floor(rnd() * b.length)] ^= 1 << Math.floor(rnd() * 8); return b; }
      case 3: return Buffer.from(JSON.stringify({ ...good, expiresMs: pick2(rnd, ['soon', null, -1, now - 1, 1e300]), applianceId: pick2(rnd, [7, null, 'appliance-z', '']) }));
      default: return Buffer.from(json);
    }
  };
  let refused = 0;
  let taken = 0;
  for (let i = 0; i < 40 * SOAK; i++) {
    await raw.send(new PutObjectCommand({ Bucket: 'fuzz', Key: 'f/lease/writer.json', Body: bodies() }));
    try {
      const b = await openOn(server, server.ref('fuzz', 'f/'), { applianceId: 'appliance-y' });
      await b.close();
      taken++;
    } catch (err) {
      if (hasCode(err, 'SV_ERR_BACKEND_LEASE_HELD')) refused++;
      else t.fail(`body ${i}: ${(err as Error).message}`);
    }
  }
  t.ok(taken > 0 && refused > 0, `${taken} taken over, ${refused} refused as held; nothing else`);
});

function pick2<T>(rnd: () => number, a: readonly T[]): T {
  return a[Math.floor(rnd() * a.length)]!;
}
