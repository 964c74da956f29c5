/**
 * How much the sync keeps in flight (src/sync/disk-sync.ts): ranges are bounded by bytes (pool size × 3 ×
 * TASK_BYTES) and by count (INFLIGHT_MAX_TASKS). A full backup of 8 MiB ranges stays at 3 per worker; an
 * incremental of scattered one-block ranges has hundreds in flight at once (what an agent source batches
 * into few calls), with no MaxListenersExceededWarning on the job's signal. Counted by a file source
 * wrapped in the registry (real file, real pool).
 */
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool, poolSize } from '../../src/pool/index.js';
import { openFileSource } from '../../src/sources/file.js';
import { registerOpener } from '../../src/sources/registry.js';
import type { DiskSource } from '../../src/sources/types.js';
import { INFLIGHT_MAX_TASKS, INFLIGHT_TASKS_PER_WORKER, TASK_BYTES } from '../../src/sync/disk-sync.js';
import { backup, fileRefs } from '../../src/sync/index.js';
import { tempDir } from '../helpers/env.js';

t.teardown(closePool);
const MiB = 1024 * 1024;
const BS = 64 * 1024;

t.test('in flight: bounded by bytes and count; many small ranges at once', async (t) => {
  const dir = tempDir(t, 'sv-inflight-');
  const disk = join(dir, 'disk.raw');
  const size = 96 * MiB;
  writeFileSync(disk, randomFillSync(Buffer.alloc(size)));
  const seen = { now: 0, bytes: 0, maxCount: 0, maxBytes: 0 };
  registerOpener('file', async (ref) => {
    const src = await openFileSource(ref);
    const backupRange: DiskSource['backupRange'] = async (req, signal) => {
      seen.now++;
      seen.bytes += req.length;
      seen.maxCount = Math.max(seen.maxCount, seen.now);
      seen.maxBytes = Math.max(seen.maxBytes, seen.bytes);
      try {
        return await src.backupRange(req, signal);
      } finally {
        seen.now--;
        seen.bytes -= req.length;
      }
    };
    return {
      ref: src.ref, info: src.info, backupRange, read: src.read.bind(src), extents: src.extents.bind(src), close: src.close.bind(src),
      get bytesTransferred() { return src.bytesTransferred; },
    } satisfies DiskSource;
  }, { replace: true });
  t.teardown(() => registerOpener('file', openFileSource, { replace: true }));
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));

  const store = join(dir, 'store');
  const signal = new AbortController().signal;
  const limit = poolSize() * INFLIGHT_TASKS_PER_WORKER * TASK_BYTES;
  await backup({ store, source: 'vm', disks: fileRefs([disk]), signal });
  t.ok(seen.maxBytes <= limit, `full backup: at most ${limit} bytes in flight (${seen.maxBytes})`);
  t.ok(seen.maxCount <= poolSize() * INFLIGHT_TASKS_PER_WORKER, `full backup: at most ${poolSize() * INFLIGHT_TASKS_PER_WORKER} ranges of ${TASK_BYTES} in flight (${seen.maxCount})`);

  // Every third block changed: 512 one-block ranges.
  const changed = Array.from({ length: 512 }, (_, i) => [i * 3 * BS, BS] as const);
  seen.maxCount = 0;
  seen.maxBytes = 0;
  await backup({ store, source: 'vm', disks: fileRefs([disk]), changed: [changed], signal });
  t.ok(seen.maxCount > poolSize() * INFLIGHT_TASKS_PER_WORKER * 8, `incremental: many one-block ranges in flight at once (${seen.maxCount})`);
  t.ok(seen.maxCount <= INFLIGHT_MAX_TASKS && seen.maxBytes <= limit, `incremental: within the limits (${seen.maxCount} ranges, ${seen.maxBytes} bytes)`);
  t.notOk(warnings.includes('MaxListenersExceededWarning'), 'no MaxListenersExceededWarning on the job\'s signal');
});
