/**
 * The S3 backend on s3rver (npm; started in this process on loopback): the shared contract suite over
 * S3Backend and over retry(S3Backend), with create-only by HEAD-before-PUT (s3rver ignores If-None-Match), then
 * the S3-specific checks of backend-s3-checks.ts. The same over a real Ceph RGW: backend-ceph.test.ts.
 */
import t from 'tap';
import { RetryBackend } from '../../storage/backend/wrap-retry.js';
import { openBackend, parseStoreUrl } from '../../storage/backend/open.js';
import { startS3rver } from '../helpers/s3rver.js';
import { backendContract } from './backend-contract.js';
import { expectCode, listAll, openOn, s3Checks } from './backend-s3-checks.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const server = await startS3rver(t);
await server.bucket('contract');
await server.bucket('checks');

await backendContract(t, 'S3Backend on s3rver', async () => ({ backend: await openOn(server, server.ref('contract', 'a/')), cleanup: async () => undefined }));
await backendContract(t, 'retry(S3Backend) on s3rver', async () => ({
  backend: new RetryBackend(await openOn(server, server.ref('contract', 'b/')), { baseDelayMs: 5 }), cleanup: async () => undefined,
}));
await s3Checks(t, server, 'checks', { listsUploads: false, checksSignatures: false });

t.test('openBackend opens s3:// store URLs, credentials from the AWS environment variables', async (t) => {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  t.teardown(() => {
    for (const [k, v] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  process.env.AWS_ACCESS_KEY_ID = server.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = server.credentials.secretAccessKey;
  const ref = parseStoreUrl(`s3://checks/url/?endpoint=${encodeURIComponent(server.endpoint)}&readOnly=1`);
  const b = await openBackend(ref);
  t.teardown(() => b.close());
  t.equal(b.location, 's3://checks/url/');
  await expectCode(t, b.put('packs/0000000000000001.pack', Buffer.from('x')), 'SV_ERR_BACKEND_READ_ONLY', 'readOnly=1 from the URL');
  const limited = await openBackend(parseStoreUrl(`s3://checks/url/?endpoint=${encodeURIComponent(server.endpoint)}&readOnly=1&rate=20`));
  t.teardown(() => limited.close());
  t.equal(limited.constructor.name, 'RateLimitBackend', 'rate=20 puts the rate limit wrapper around it');
  t.same(await listAll(limited, 'packs/'), [], 'and it works');
});
