/**
 * The worker pool: pack round trip (same result as in-thread), buffers moved or shared (not copied),
 * errors crossing threads with their code, unknown tasks, stats, close and restart.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { BLOCK_FLAG, blockAt, packBlocks, unpackBlock } from '../../src/native/index.js';
import { closePool, getPool, poolSize, poolStats, runTask, WORKER_FILE } from '../../src/pool/index.js';
import { packInPool } from '../../src/pool/pack.js';
import type { TaskName } from '../../workers/tasks.js';

t.teardown(closePool);

function mixed(): Buffer {
  const text = Buffer.from('2026-11-24 sv-sync INFO block written digest ok\n'.repeat(3000), 'latin1');
  return Buffer.concat([text.subarray(0, 100_000), Buffer.alloc(70_000), randomBytes(66_000), text.subarray(0, 5_000)]);
}

t.test('the pool is one per process, sized to the cores', async (t) => {
  t.equal(getPool(), getPool());
  t.equal(getPool().maxThreads, poolSize());
  t.ok(poolSize() >= 1);
  t.match(WORKER_FILE, /\/build\/workers\/index\.js$/, 'workers run the compiled module, not .ts under a loader');
});

t.test('pack in a worker gives the same batch as in this thread, and it round-trips', async (t) => {
  const data = mixed();
  const original = Buffer.from(data);
  const local = packBlocks(data, 32768, 1);
  const remote = await packInPool(data, 32768, 1);
  t.equal(remote.count, local.count);
  t.same(remote.offsets, local.offsets);
  t.same(remote.flags, local.flags);
  t.same(remote.digests, local.digests);
  t.ok(remote.payload.equals(local.payload), 'same payload');
  t.ok(Buffer.isBuffer(remote.digests) && Buffer.isBuffer(remote.payload), 'Buffer views rebuilt on this side');
  t.ok([...remote.flags].includes(BLOCK_FLAG.ZERO) && [...remote.flags].includes(BLOCK_FLAG.RAW) && [...remote.flags].includes(BLOCK_FLAG.ZSTD));
  const restored = Buffer.concat(
    Array.from({ length: remote.count }, (_, i) => {
      const b = blockAt(remote, i);
      return unpackBlock(b.payload, b.flag, b.digest, b.size);
    }),
  );
  t.ok(restored.equals(data), 'unpacked blocks are the input');
  t.ok(data.equals(original), 'the input (copied once, not moved) is intact');
});

t.test('consume: true moves the input ArrayBuffer (detached here, no copy)', async (t) => {
  const data = new Uint8Array(mixed());
  const copy = Buffer.from(data);
  const batch = await packInPool(data, 65536, 1, { consume: true });
  t.equal(data.byteLength, 0, 'the caller buffer is detached');
  t.same(batch.digests, packBlocks(copy, 65536, 1).digests);
});

t.test('a SharedArrayBuffer is shared, not moved', async (t) => {
  const bytes = mixed();
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  const view = shared.subarray(100_000, 200_000);
  const batch = await packInPool(view, 4096, 1);
  t.equal(shared.byteLength, bytes.length, 'still attached');
  t.same(batch.digests, packBlocks(bytes.subarray(100_000, 200_000), 4096, 1).digests);
});

t.test('results are moved back, not copied: their ArrayBuffers are exactly their size', async (t) => {
  const batch = await packInPool(mixed(), 65536, 1);
  t.equal(batch.payload.buffer.byteLength, batch.payload.byteLength);
  t.equal(batch.offsets.buffer, batch.flags.buffer, 'offsets/digests/flags still share one ArrayBuffer');
});

t.test('an SvError thrown in a worker crosses with its code, message and details', async (t) => {
  await t.rejects(
    runTask('echo', { value: null, failWith: { code: 'SV_ERR_NATIVE_DIGEST_MISMATCH', message: 'block 7 is bad', details: { block: 7 } } }),
    { name: 'SvError', code: 'SV_ERR_NATIVE_DIGEST_MISMATCH', message: 'block 7 is bad', details: { block: 7, task: 'echo' } },
  );
});

t.test('a native error inside a worker task crosses with its native code', async (t) => {
  await t.rejects(runTask('pack', { data: new ArrayBuffer(10), byteOffset: 0, byteLength: 10, blockSize: 0, level: 1 }), {
    name: 'SvError',
    code: 'SV_ERR_NATIVE_BAD_ARGUMENT',
  });
  await t.rejects(runTask('pack', { data: new ArrayBuffer(10), byteOffset: 8, byteLength: 10, blockSize: 4, level: 1 }), {
    code: 'SV_ERR_CORE_INVALID_ARGUMENT',
  });
});

t.test('a plain Error in a worker becomes SV_ERR_POOL_WORKER_FAILED with the worker stack', async (t) => {
  const err = await runTask('echo', { value: 1, throwPlain: 'kaboom' }).catch((e: unknown) => e);
  t.match(err, { name: 'SvError', code: 'SV_ERR_POOL_WORKER_FAILED', message: /kaboom/ });
  t.match((err as { details: { stack: string } }).details.stack, /echo/);
});

t.test('an unknown task name is SV_ERR_POOL_UNKNOWN_TASK', async (t) => {
  await t.rejects(runTask('no-such-task' as TaskName, { value: 1 } as never), { code: 'SV_ERR_POOL_UNKNOWN_TASK' });
});

t.test('an aborted task is SV_ERR_CORE_CANCELLED', async (t) => {
  const controller = new AbortController();
  controller.abort();
  await t.rejects(runTask('echo', { value: 1 }, { signal: controller.signal }), { name: 'SvError', code: 'SV_ERR_CORE_CANCELLED' });
});

t.test('tasks run on worker threads, spread over the pool', async (t) => {
  const results = await Promise.all(Array.from({ length: 16 }, (_, i) => runTask('echo', { value: i })));
  t.same(results.map((r) => r.value), Array.from({ length: 16 }, (_, i) => i));
  t.ok(results.every((r) => r.threadId > 0), 'not the main thread');
});

t.test('stats for metrics', async (t) => {
  const s = poolStats();
  t.equal(s.maxThreads, poolSize());
  t.ok(s.threads >= 1 && s.threads <= s.maxThreads);
  t.ok(s.completed > 0);
  t.ok(s.utilization >= 0 && s.utilization <= 1);
  t.equal(typeof s.queueSize, 'number');
});

t.test('closePool shuts down; the next task starts a fresh pool', async (t) => {
  const before = getPool();
  await closePool();
  t.equal(poolStats().threads, 0);
  const r = await runTask('echo', { value: 'again' });
  t.equal(r.value, 'again');
  t.not(getPool(), before);
});

// Regression (seen in CI-like runs of test/sync/api.test.ts): a worker that answers a task aborted meanwhile
// makes piscina emit 'error' ("Unexpected message from Worker"); with no listener that killed the process.
t.test('a stale worker answer after an abort does not crash the process', async (t) => {
  const pool = getPool();
  t.ok(pool.listenerCount('error') > 0, 'the pool has an error listener');
  t.doesNotThrow(() => pool.emit('error', new Error('Unexpected message from Worker: { taskId: 1 }')));
  const r = await runTask('echo', { value: 'still running' });
  t.equal(r.value, 'still running');
});
