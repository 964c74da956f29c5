/**
 * The NBD client against nbdkit: the data plugin (known bytes), sparse-random (allocation vs content, and
 * the same bytes as nbdcopy reads), memory 1G (a large sparse export), the error filter (an injected read
 * error fails that request only; the connection goes on) and the delay filter (a request that never
 * completes in time ends the connection with SV_ERR_NBD_TIMEOUT).
 */
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { NbdClient } from '../../src/nbd/client.js';
import { walkExtents } from '../../src/nbd/extents.js';
import { CONTEXT, STATE } from '../../src/nbd/protocol.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { nbdkit } from './peers.js';
import { execFileSync } from 'node:child_process';

const MiB = 1 << 20;

function connect(sock: string, extra: Partial<Parameters<typeof NbdClient.connect>[0]> = {}): Promise<NbdClient> {
  return NbdClient.connect({ target: { path: sock }, metaContexts: [CONTEXT.BASE_ALLOCATION], ...extra });
}

t.test('nbdkit data: known bytes at known offsets', async (t) => {
  const dir = tempDir(t);
  const sock = await nbdkit(t, dir, ['data', '0 1 2 3 @0x1fe 0x55 0xaa @4096 ( "Hello" )*100', 'size=1M']);
  const client = await connect(sock);
  t.teardown(() => client.close());
  t.equal(client.size, MiB);
  const want = Buffer.alloc(8192);
  want.set([0, 1, 2, 3], 0);
  want.set([0x55, 0xaa], 0x1fe);
  want.write('Hello'.repeat(100), 4096, 'latin1');
  t.same(await client.read(0, 8192), want);
  t.same(await client.read(4096 + 5, 5), Buffer.from('Hello'), 'unaligned read (minimum block 1)');
});

t.test('nbdkit sparse-random: zero extents read as zeroes, data is nbdcopy\'s', async (t) => {
  const nbdcopy = requireTool('nbdcopy');
  const dir = tempDir(t);
  const sock = await nbdkit(t, dir, ['sparse-random', 'size=32M', 'seed=7', 'percent=40', 'runlength=524288']);
  const client = await connect(sock, { maxRequestBytes: 4 * MiB });
  t.teardown(() => client.close());
  const whole = await client.read(0, client.size);
  let zero = 0;
  let data = 0;
  for await (const e of walkExtents(client, CONTEXT.BASE_ALLOCATION, { step: 8 * MiB })) {
    const bytes = whole.subarray(e.offset, e.offset + e.length);
    if (e.flags & STATE.ZERO) {
      zero += e.length;
      if (!bytes.every((b) => b === 0)) t.fail(`zero extent at ${e.offset} holds data`);
    } else {
      data += e.length;
      if (bytes.every((b) => b === 0)) t.fail(`data extent at ${e.offset} reads as zeroes`);
    }
  }
  t.equal(zero + data, client.size, 'extents cover the export');
  t.ok(zero > 0 && data > 0, `data ${data}, zero ${zero}`);
  const copied = execFileSync(nbdcopy, [`nbd+unix:///?socket=${sock}`, '-'], { maxBuffer: 64 * MiB });
  t.equal(createHash('sha256').update(whole).digest('hex'), createHash('sha256').update(copied).digest('hex'), 'same bytes as nbdcopy');
});

t.test('nbdkit memory 1G: one sparse extent, reads at the end', async (t) => {
  const dir = tempDir(t);
  const sock = await nbdkit(t, dir, ['memory', '1G']);
  const client = await connect(sock);
  t.teardown(() => client.close());
  t.equal(client.size, 1 << 30);
  t.notOk(client.readOnly);
  const extents = [];
  for await (const e of walkExtents(client, CONTEXT.BASE_ALLOCATION)) extents.push(e);
  t.same(extents, [{ offset: 0, length: 1 << 30, flags: STATE.HOLE | STATE.ZERO }]);
  t.ok((await client.read((1 << 30) - 65536, 65536)).every((b) => b === 0));
});

t.test('nbdkit error filter: an injected EIO fails that request; the connection survives', async (t) => {
  const dir = tempDir(t);
  const trigger = join(dir, 'fail-reads');
  const sock = await nbdkit(t, dir, ['--filter=error', 'memory', '16M', 'error-pread=EIO', 'error-pread-rate=100%', `error-pread-file=${trigger}`]);
  const client = await connect(sock, { maxInFlight: 4 });
  t.teardown(() => client.close());
  t.equal((await client.read(0, MiB)).length, MiB);
  writeFileSync(trigger, '');
  const outcomes = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => client.read(i * MiB, MiB)));
  for (const o of outcomes) {
    if (o.status === 'fulfilled' || !hasCode(o.reason, 'SV_ERR_NBD_REQUEST_FAILED')) t.fail(`expected SV_ERR_NBD_REQUEST_FAILED, got ${o.status}`);
  }
  const reason = (outcomes[0] as PromiseRejectedResult).reason as { details: { errno: string } };
  t.equal(reason.details.errno, 'NBD_EIO');
  t.equal((await client.blockStatus(0, MiB, CONTEXT.BASE_ALLOCATION)).length, 1, 'block status still works');
  rmSync(trigger);
  t.equal((await client.read(15 * MiB, MiB)).length, MiB, 'reads work again');
  t.equal(client.failure, null);
});

t.test('nbdkit delay filter: a request not answered in time ends the connection with SV_ERR_NBD_TIMEOUT', async (t) => {
  const dir = tempDir(t);
  const sock = await nbdkit(t, dir, ['--filter=delay', 'memory', '1M', 'rdelay=20']);
  const client = await connect(sock, { requestTimeoutMs: 300 });
  t.teardown(() => client.close());
  const reads = [client.read(0, 4096), client.read(4096, 4096)];
  for (const r of reads) await t.rejects(r, { code: 'SV_ERR_NBD_TIMEOUT' });
  await t.rejects(client.read(0, 4096), { code: 'SV_ERR_NBD_TIMEOUT' }, 'later requests see why the connection ended');
});
