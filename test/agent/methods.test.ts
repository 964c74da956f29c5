/**
 * The agent's methods over a driver of real image files (test/helpers/file-driver.ts): view sessions (open,
 * range, read, extents, commit, release, idle expiry), hostile parameters, and restore to the host (confined
 * to --restore-root, only next to the agent's own VMs, temp file + rename, nothing left on abort).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { textLike } from '../../bench/data.js';
import { createMethods } from '../../src/agent/methods/index.js';
import { decodeRangeAnswer } from '../../src/agent/methods/range-codec.js';
import { closePool } from '../../src/pool/index.js';
import { openDiskSource } from '../../src/sources/registry.js';
import { answerPayload } from '../../src/agent/rpc.js';
import { FileDriver } from '../helpers/file-driver.js';
import { tempDir } from '../helpers/env.js';

const BS = 64 * 1024;
const signal = new AbortController().signal;
t.teardown(() => closePool());

function setup(t: Parameters<typeof tempDir>[0], idleMs = 60_000) {
  const dir = tempDir(t);
  const vmDir = join(dir, 'vms', 'vm1');
  mkdirSync(vmDir, { recursive: true });
  const disk = join(vmDir, 'disk0.img');
  const data = Buffer.alloc(20 * BS);
  textLike(8 * BS, 5).copy(data, 2 * BS);
  writeFileSync(disk, data);
  const snaps = join(dir, 'snaps');
  mkdirSync(snaps);
  const driver = new FileDriver([{ id: 'vm-1', name: 'vm1', disks: [disk] }], snaps);
  const methods = createMethods({ driver, open: openDiskSource, restoreRoots: [join(dir, 'vms')], idleMs });
  t.teardown(() => methods.close());
  return { dir, vmDir, disk, data, snaps, driver, methods, h: methods.handlers };
}

t.test('a view session: open, range (changed blocks only), read, extents, commit, release', async (t) => {
  const { data, snaps, driver, h } = setup(t);
  const open = await h['view.open']({ vmId: 'vm-1', mode: 'auto', allowOnline: true }, undefined, signal);
  const s = open.result.session;
  t.match(s, /^[0-9a-f]{32}$/, 'a random session id');
  t.equal(open.result.consistency, 'offline');
  t.equal(open.result.disks[0]!.virtualSize, data.length);
  const first = await h['view.range']({ session: s, disk: 0, offset: 0, length: 20 * BS, blockSize: BS, level: 3, hasOld: false }, undefined, signal);
  t.equal(first.result.count, 20);
  const r1 = decodeRangeAnswer(answerPayload(first)!, { count: 20, blockSize: BS, length: 20 * BS }, null);
  t.same([...r1.packed], [2, 3, 4, 5, 6, 7, 8, 9], 'no old digests: every non-zero block, no zero block');
  const again = await h['view.range']({ session: s, disk: 0, offset: 0, length: 20 * BS, blockSize: BS, level: 3, hasOld: true }, r1.digests, signal);
  t.equal(answerPayload(again)!.length, 0, 'the same digests as old: nothing sent');
  const read = await h['view.read']({ session: s, disk: 0, offset: 2 * BS, length: BS }, undefined, signal);
  t.same(Buffer.from(read.payload!), data.subarray(2 * BS, 3 * BS), 'view.read returns the bytes');
  const ext = await h['view.extents']({ session: s, disk: 0 }, undefined, signal);
  t.equal(ext.result.extents.reduce((n, e) => n + e.length, 0), data.length, 'extents cover the disk');
  const ch = await h['view.changes']({ session: s, disk: 0, previous: null }, undefined, signal);
  t.same(ch.result, { usable: false, reason: 'file driver has no change tracking' }, 'the driver\'s change answer');
  await h['view.commit']({ session: s }, undefined, signal);
  await h['view.release']({ session: s }, undefined, signal);
  await h['view.release']({ session: s }, undefined, signal);
  t.same(driver.events, ['open 1 auto', 'commit 1', 'release 1'], 'committed once, released once (release is idempotent)');
  t.same(readdirSync(snaps), [], 'the view\'s snapshot files are gone');
  await t.rejects(h['view.range']({ session: s, disk: 0, offset: 0, length: BS, blockSize: BS, level: 3, hasOld: false }, undefined, signal), { code: 'SV_ERR_AGENT_UNKNOWN_SESSION' }, 'a released session is unknown');
  await t.rejects(h['view.commit']({ session: s }, undefined, signal), { code: 'SV_ERR_AGENT_UNKNOWN_SESSION' }, 'commit of a released session fails (the appliance is told)');
});

t.test('an idle session expires: the view is aborted and released', async (t) => {
  const { snaps, driver, h } = setup(t, 300);
  const { result } = await h['view.open']({ vmId: 'vm-1', mode: 'offline', allowOnline: false }, undefined, signal);
  await sleep(50);
  await h['view.read']({ session: result.session, disk: 0, offset: 0, length: 4096 }, undefined, signal);
  let waited = 0;
  while (!driver.events.includes('release 1') && waited < 10_000) {
    await sleep(50);
    waited += 50;
  }
  t.same(driver.events, ['open 1 offline', 'abort 1', 'release 1'], 'aborted (tracking rolled back) and released');
  t.same(readdirSync(snaps), [], 'nothing left on the host');
  await t.rejects(h['view.read']({ session: result.session, disk: 0, offset: 0, length: 4096 }, undefined, signal), { code: 'SV_ERR_AGENT_UNKNOWN_SESSION' });
});

t.test('hostile parameters get SV_ERR_AGENT_BAD_PARAMS, unknown VMs are refused', async (t) => {
  const { h } = setup(t);
  await t.rejects(h['view.open']({ vmId: 'nope', mode: 'auto', allowOnline: true }, undefined, signal), { code: 'SV_ERR_AGENT_VM_NOT_HOSTED' });
  const { result } = await h['view.open']({ vmId: 'vm-1', mode: 'auto', allowOnline: true }, undefined, signal);
  const s = result.session;
  const base = { session: s, disk: 0, offset: 0, length: BS, blockSize: BS, level: 3, hasOld: false };
  const bad: Array<[string, Record<string, unknown>, Uint8Array | undefined]> = [
    ['disk out of range', { ...base, disk: 1 }, undefined],
    ['negative disk', { ...base, disk: -1 }, undefined],
    ['string offset', { ...base, offset: '0' }, undefined],
    ['range past the end', { ...base, offset: 20 * BS, length: BS }, undefined],
    ['range above 16 MiB', { ...base, length: 32 * 1024 * 1024 }, undefined],
    ['misaligned offset', { ...base, offset: 4096 }, undefined],
    ['block size not a power of two', { ...base, blockSize: 3 * 4096, length: 3 * 4096 }, undefined],
    ['level out of range', { ...base, level: 99 }, undefined],
    ['digest list of the wrong size', { ...base, hasOld: true }, new Uint8Array(31)],
    ['payload without hasOld', base, new Uint8Array(32)],
    ['hasOld not a boolean', { ...base, hasOld: 1 }, undefined],
    ['session not a string', { ...base, session: 5 }, undefined],
  ];
  for (const [what, params, payload] of bad) {
    await t.rejects(h['view.range'](params as never, payload, signal), { code: 'SV_ERR_AGENT_BAD_PARAMS' }, what);
  }
  await t.rejects(h['view.range']({ ...base, session: 'f'.repeat(32) }, undefined, signal), { code: 'SV_ERR_AGENT_UNKNOWN_SESSION' }, 'a guessed session id');
  await t.rejects(h['view.open']({ vmId: 'vm-1', mode: 'fast', allowOnline: true } as never, undefined, signal), { code: 'SV_ERR_AGENT_BAD_PARAMS' }, 'unknown mode');
  await h['view.release']({ session: s }, undefined, signal);
});

t.test('view.spans: many ranges in one call, the view.range answers back to back; hostile spans refused', async (t) => {
  const { h } = setup(t);
  const { result } = await h['view.open']({ vmId: 'vm-1', mode: 'auto', allowOnline: true }, undefined, signal);
  const s = result.session;
  const spans: Array<[number, number]> = [[0, BS], [2 * BS, 3 * BS], [9 * BS, BS], [2 * BS, BS]];
  const one = await Promise.all(spans.map(([offset, length]) => h['view.range']({ session: s, disk: 0, offset, length, blockSize: BS, level: 3, hasOld: false }, undefined, signal)));
  const all = await h['view.spans']({ session: s, disk: 0, blockSize: BS, level: 3, hasOld: false, spans }, undefined, signal);
  t.same(all.result.lengths, one.map((a) => answerPayload(a)?.length ?? 0), 'each span\'s answer length');
  t.same(Buffer.from(answerPayload(all)!), Buffer.concat(one.map((a) => answerPayload(a) ?? new Uint8Array(0))), 'the view.range answers back to back');
  const digests = spans.map(([, length]) => decodeRangeAnswer(new Uint8Array(0), { count: length / BS, blockSize: BS, length }, null).digests);
  const withOld = await h['view.spans']({ session: s, disk: 0, blockSize: BS, level: 3, hasOld: true, spans }, Buffer.concat(digests), signal);
  t.same(withOld.result.lengths.map((n) => n > 0), one.map((a) => (answerPayload(a)?.length ?? 0) > 0), 'old digests (all zero): the non-zero spans are sent');
  const base = { session: s, disk: 0, blockSize: BS, level: 3, hasOld: false, spans: [[0, BS]] };
  const bad: Array<[string, Record<string, unknown>, Uint8Array | undefined]> = [
    ['no spans', { ...base, spans: [] }, undefined],
    ['more than MAX_SPANS spans', { ...base, spans: Array.from({ length: 4097 }, () => [0, BS]) }, undefined],
    ['a span that is not a pair', { ...base, spans: [[0, BS, 1]] }, undefined],
    ['a span of strings', { ...base, spans: [['0', String(BS)]] }, undefined],
    ['a span past the end', { ...base, spans: [[19 * BS, 2 * BS]] }, undefined],
    ['a misaligned span', { ...base, spans: [[4096, BS]] }, undefined],
    ['an empty span', { ...base, spans: [[0, 0]] }, undefined],
    ['more than 16 MiB in all', { ...base, spans: Array.from({ length: 17 }, () => [0, 16 * BS]) }, undefined],
    ['digests of the wrong size', { ...base, hasOld: true }, new Uint8Array(33)],
    ['a payload without hasOld', base, new Uint8Array(32)],
    ['spans not a list', { ...base, spans: { 0: [0, BS] } }, undefined],
  ];
  for (const [what, params, payload] of bad) {
    await t.rejects(h['view.spans'](params as never, payload, signal), { code: 'SV_ERR_AGENT_BAD_PARAMS' }, what);
  }
  await h['view.release']({ session: s }, undefined, signal);
});

t.test('restore to the host: next to the VM\'s disks, confined, atomic', async (t) => {
  const { dir, vmDir, h } = setup(t);
  const size = 3 * BS + 512;
  const open = await h['restore.open']({ vmId: 'vm-1', name: 'disk0.img', virtualSize: size, format: 'raw' }, undefined, signal);
  t.match(open.result.path, new RegExp(`^${vmDir}/disk0\\.img-restored-.*\\.img$`), 'named next to the VM\'s disks');
  const content = Buffer.alloc(size);
  textLike(BS, 8).copy(content, BS);
  content.fill(7, 3 * BS);
  await h['restore.write']({ handle: open.result.handle, offset: 0 }, content.subarray(0, 2 * BS), signal);
  await h['restore.write']({ handle: open.result.handle, offset: 2 * BS }, content.subarray(2 * BS), signal);
  t.notOk(existsSync(open.result.path), 'not under its name before close');
  await t.rejects(h['restore.write']({ handle: open.result.handle, offset: size - 10 }, new Uint8Array(11), signal), { code: 'SV_ERR_AGENT_BAD_PARAMS' }, 'a write past the disk size');
  const closed = await h['restore.close']({ handle: open.result.handle, commit: true }, undefined, signal);
  t.equal(closed.result.path, open.result.path);
  t.same(readFileSync(closed.result.path), content, 'the restored file has the bytes');
  t.same(readdirSync(vmDir).filter((n) => n.startsWith('.')), [], 'no temp file left');

  const dropped = await h['restore.open']({ vmId: 'vm-1', name: 'x', virtualSize: BS, format: 'raw' }, undefined, signal);
  await h['restore.close']({ handle: dropped.result.handle, commit: false }, undefined, signal);
  t.notOk(existsSync(dropped.result.path), 'an aborted restore leaves nothing');
  t.same(readdirSync(vmDir).filter((n) => n.startsWith('.')), [], '... not even a temp file');

  await t.rejects(h['restore.open']({ vmId: 'other', name: 'x', virtualSize: BS, format: 'raw' }, undefined, signal), { code: 'SV_ERR_AGENT_VM_NOT_HOSTED' }, 'not this agent\'s VM');
  await t.rejects(h['restore.open']({ vmId: 'vm-1', name: 'x', virtualSize: BS, format: 'qcow2' }, undefined, signal), { code: 'SV_ERR_AGENT_RESTORE_FAILED' }, 'only raw');
  const outside = createMethods({ driver: new FileDriver([{ id: 'vm-1', name: 'vm1', disks: [join(vmDir, 'disk0.img')] }], dir), open: openDiskSource, restoreRoots: [join(dir, 'elsewhere')] });
  t.teardown(() => outside.close());
  await t.rejects(outside.handlers['restore.open']({ vmId: 'vm-1', name: 'x', virtualSize: BS, format: 'raw' }, undefined, signal), { code: 'SV_ERR_API_PATH_NOT_ALLOWED' }, 'VM disks outside --restore-root');
});
