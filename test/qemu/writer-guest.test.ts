/**
 * The QMP client against a real QEMU running the 512-byte writer guest (one boot for the whole file):
 * queries, many commands in flight, a coded command error, STOP/RESUME events, and the point of issue 10:
 * a copy of the disk taken while the guest writes is torn (the consistency rule catches it), a copy taken
 * between `stop` and `cont` is consistent.
 */
import t from 'tap';
import { copyFileSync, closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hasCode } from '../../src/errors/index.js';
import { cont, queryBlock, queryName, queryStatus, queryUuid, stop } from '../../src/qemu/qmp-commands.js';
import { tempDir } from '../helpers/env.js';
import { startVm } from '../helpers/vm.js';
import { RING_LBA, SECTOR, checkWriterImage, makeWriterDisk, readHeader, waitForHeader } from '../helpers/writer-guest.js';

const dir = tempDir(t, 'sv-writer-');
const disk = makeWriterDisk(join(dir, 'disk.raw'), 'raw');
const bootStart = Date.now();
const vm = await startVm(t, { dir, name: 'sv-writer', disks: [{ path: disk, format: 'raw' }] });
const ringFull = await waitForHeader(disk, 300);
t.comment(`writer guest: header ${ringFull} after ${Date.now() - bootStart} ms (QEMU start + ring fill)`);

/** Copy `src` to `dst` in two parts: everything before the ring, then (after `between`) the rest. */
async function copyInTwoParts(src: string, dst: string, between: () => Promise<void>): Promise<void> {
  const input = openSync(src, 'r');
  const output = openSync(dst, 'w');
  try {
    const copy = (from: number, to: number): void => {
      const buf = Buffer.alloc(to - from);
      const n = readSync(input, buf, 0, buf.length, from);
      writeSync(output, buf, 0, n, from);
    };
    copy(0, RING_LBA * SECTOR);
    await between();
    copy(RING_LBA * SECTOR, 64 << 20);
  } finally {
    closeSync(input);
    closeSync(output);
  }
}

t.test('queries', async (t) => {
  t.equal(vm.qmp.greeting.version.qemu.major >= 7, true, `QEMU ${JSON.stringify(vm.qmp.greeting.version.qemu)}`);
  t.same(await queryName(vm.qmp), { name: 'sv-writer' });
  t.equal((await queryUuid(vm.qmp)).UUID, '6c2b4b1a-53f5-4d6e-9a4b-2f1a0c9e7d11');
  t.match(await queryStatus(vm.qmp), { running: true, status: 'running' });
  const block = (await queryBlock(vm.qmp)).find((b) => b.qdev?.includes('vblk0'));
  t.equal(block?.inserted?.['node-name'], 'disk0');
  t.equal(block?.inserted?.drv, 'raw');
  t.equal(block?.inserted?.file, disk);
});

t.test('many commands in flight each get their own reply', async (t) => {
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? queryName(vm.qmp) : queryUuid(vm.qmp))));
  replies.forEach((r, i) => t.same(Object.keys(r), [i % 2 ? 'name' : 'UUID']));
});

t.test('a failing command carries QMP error class and description', async (t) => {
  const err = await vm.qmp.execute('no-such-command').catch((e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_QEMU_COMMAND_FAILED'));
  t.match((err as { details: unknown }).details, { command: 'no-such-command', errorClass: 'CommandNotFound', desc: /no-such-command/ });
  const bad = await vm.qmp.execute('blockdev-del', { 'node-name': 'nope' }).catch((e: unknown) => e);
  t.match((bad as { details: unknown }).details, { errorClass: 'GenericError' });
});

t.test('a copy taken while the guest writes is torn', async (t) => {
  // Measure how often a plain, fast copy is torn (reported, not asserted: it is a race).
  let torn = 0;
  const tries = 20;
  for (let i = 0; i < tries; i++) {
    copyFileSync(disk, join(dir, 'fast.raw'));
    if (!checkWriterImage(join(dir, 'fast.raw')).ok) torn++;
  }
  t.comment(`plain copyFile of the running guest's disk: ${torn}/${tries} copies torn`);
  // A copy that reaches the ring after the guest wrote twice more (as any backup taking time does) is torn.
  const copy = join(dir, 'running.raw');
  await copyInTwoParts(disk, copy, async () => {
    await waitForHeader(disk, readHeader(copy) + 2);
  });
  const check = checkWriterImage(copy);
  t.equal(check.ok, false, 'the rule catches the torn copy');
  t.match(check.problems.join('; '), /older than the newest slot/);
});

t.test('a copy taken between stop and cont is consistent', async (t) => {
  const stopped = vm.qmp.waitForEvent('STOP');
  await stop(vm.qmp);
  await stopped;
  t.equal((await queryStatus(vm.qmp)).status, 'paused');
  const copy = join(dir, 'paused.raw');
  await copyInTwoParts(disk, copy, () => new Promise((r) => setTimeout(r, 300)));
  const resumed = vm.qmp.waitForEvent('RESUME');
  await cont(vm.qmp);
  await resumed;
  const check = checkWriterImage(copy);
  t.same(check.problems, []);
  t.ok(check.ok, `consistent at header ${check.header}`);
  await waitForHeader(disk, check.header + 1);
  t.equal((await queryStatus(vm.qmp)).status, 'running', 'the guest writes again after cont');
});

t.test('quit: commands in flight end with SV_ERR_QEMU_GONE', async (t) => {
  const shutdown = vm.qmp.waitForEvent('SHUTDOWN');
  const pending = vm.qmp.execute('quit').then(() => vm.qmp.execute('query-status'));
  const err = await pending.catch((e: unknown) => e);
  t.match((await shutdown).data, { guest: false, reason: 'host-qmp-quit' });
  t.ok(hasCode(err, 'SV_ERR_QEMU_GONE'), String(err));
  t.ok(hasCode(await vm.qmp.execute('query-status').catch((e: unknown) => e), 'SV_ERR_QEMU_GONE'));
  await vm.shutdown();
});
