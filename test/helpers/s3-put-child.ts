/**
 * A child process for the S3 crash test (backend-ceph.test.ts): opens S3Backend for writing (taking over its
 * own appliance's lease after the previous child was killed) and puts packs one after another for ever,
 * printing `start KEY SHA256` before each put and `done KEY` after it resolves. The parent kills it with
 * SIGKILL at a random moment and checks what the bucket holds against these lines.
 * argv[2]: JSON { ref, credentials, round, size }.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Backend, type S3Credentials } from '../../storage/backend/s3.js';
import type { S3BackendRef } from '../../storage/backend/types.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { ref, credentials, round, size } = JSON.parse(process.argv[2]!) as { ref: S3BackendRef; credentials: S3Credentials; round: number; size: number };
const b = await S3Backend.open(ref, { credentials, applianceId: 'crash-test', upload: { multipartThreshold: 5 << 20, partSize: 5 << 20, concurrency: 2 } });
const file = join(tmpdir(), `sv-s3-crash-${process.pid}`);
for (let i = 0; ; i++) {
  const body = randomBytes(i % 2 ? size : 4096 + i); // multipart packs and small objects, alternating
  const key = `packs/${round.toString(16).padStart(8, '0')}${i.toString(16).padStart(8, '0')}.pack`;
  process.stdout.write(`start ${key} ${createHash('sha256').update(body).digest('hex')}\n`);
  writeFileSync(file, body);
  await b.put(key, { file });
  process.stdout.write(`done ${key}\n`);
}
