/**
 * The volume store on S3 end to end, through the real CLI, on a real Ceph RADOS Gateway (ONE throwaway
 * one-node cluster for the whole file, test/helpers/ceph.ts):
 * - the flow as child processes: backup (creates the store), incremental backup, points, verify, restore of
 *   both points compared with `qemu-img compare`, prune, gc; the state folder's default place and identity;
 *   a state folder used with another store (SV_ERR_STORE_STATE_DIR_MISMATCH); repair refused (coded);
 * - kill -9 of backup processes at random moments (20 rounds; SHADOWVAULT_SOAK=1: 60): after each kill, verify
 *   of all earlier points passes, the next backup succeeds, and no staging file of the killed process is left
 *   after it; at the end every point restores bit-identical;
 * - Object Lock (a bucket created with it): prune and gc skip objects under retention and report
 *   `lockedSkipped`; `store extend-lock` pushes the retention of the kept points' objects forward; `serve` on
 *   the store keeps its state in <data-dir>/store-state and extends the retention after a gc job.
 * The checks between the steps a test is about run the same CLI main() in this process (test/helpers/cli.ts).
 * Needs: apt-get install -y ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base qemu-utils.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { GetObjectRetentionCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { changeDay, generateDisk, prng } from '../../bench/gen-disk.js';
import { api, serve } from '../api/serve-helper.js';
import { cliInProcess as svIn, cliJsonInProcess as svInJson } from '../helpers/cli.js';
import { startCeph } from '../helpers/ceph.js';
import { childEnv, CLI, requireTool, runAsync, tempDir } from '../helpers/env.js';
import { rounds } from '../helpers/soak.js';
import { sha256, svAsync, type Point } from '../sync/helpers.js';
import { closePool } from '../../src/pool/index.js';
import { backup, fileRefs, verify } from '../../src/sync/index.js';
import { Store } from '../../storage/store.js';
import type { S3Backend } from '../../storage/backend/s3.js';
import { innermost } from '../../storage/backend/wrap.js';

const MiB = 1 << 20;
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const qemuImg = requireTool('qemu-img');
const ceph = await startCeph(t);
process.env.AWS_ACCESS_KEY_ID = ceph.credentials.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = ceph.credentials.secretAccessKey;
const root = tempDir(t, 'sv-s3cli-');
// The default state folder lands under XDG_STATE_HOME (children and in-process runs alike).
process.env.XDG_STATE_HOME = join(root, 'xdg-state');
delete process.env.SHADOWVAULT_STATE_DIR;

const url = (bucket: string, prefix: string, extra = ''): string => `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(ceph.endpoint)}${extra}`;

async function svOk(args: string[]): Promise<string> {
  const r = await svAsync(args);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

t.test('backup, incremental, points, verify, restore, prune, gc as CLI processes on Ceph RGW', async (t) => {
  await ceph.bucket('flow');
  const store = url('flow', 'vault');
  const disk = join(root, 'flow.raw');
  generateDisk(disk, 8 * MiB, 5); // one compressible and one random region
  copyFileSync(disk, join(root, 'flow-day1.raw'));
  const p1 = JSON.parse(await svOk(['backup', disk, '--store', store, '--source', 'vm1', '--json'])) as Point;
  t.equal(p1.kind, 'initial', 'the first backup creates the store and an initial point');
  const stateDirs = readdirSync(join(root, 'xdg-state', 'shadowvault', 'stores'));
  t.match(stateDirs, [/^flow-[0-9a-f]{16}$/u], 'default state folder: <XDG_STATE_HOME>/shadowvault/stores/<bucket>-<16 hex>');
  const state = join(root, 'xdg-state', 'shadowvault', 'stores', stateDirs[0]!);
  t.ok(existsSync(join(state, 'cache', 'objects', 'points', 'vm1', `${p1.id}.json`)), 'the manifest is in the local cache');
  const changed = changeDay(disk, 8 * MiB, 10, 2);
  copyFileSync(disk, join(root, 'flow-day2.raw'));
  writeFileSync(join(root, 'flow-changed.json'), JSON.stringify(changed));
  const p2 = JSON.parse(await svOk(['backup', disk, '--store', store, '--source', 'vm1', '--changed', join(root, 'flow-changed.json'), '--json'])) as Point;
  t.equal(p2.kind, 'incremental', `the second backup is incremental (${changed.length} changed ranges)`);
  const changedBytes = changed.reduce((n, [, len]) => n + len, 0);
  t.ok(p2.bytesRead <= changedBytes, `it reads only the changed ranges (${p2.bytesRead} <= ${changedBytes} bytes)`);
  const listed = JSON.parse(await svOk(['points', '--store', store, '--json'])) as Point[];
  t.same(listed.map((p) => p.id), [p1.id, p2.id], 'points lists both, oldest first');
  const v = JSON.parse(await svOk(['verify', '--store', store, '--json'])) as { points: number; bad: unknown[]; blocksChecked: number };
  t.equal(v.points, 2);
  t.same(v.bad, [], `verify: ${v.blocksChecked} blocks, none bad`);
  for (const [p, day] of [[p1, 'flow-day1.raw'], [p2, 'flow-day2.raw']] as const) {
    const out = join(root, `flow-restored-${p.id}.raw`);
    await svOk(['restore', `vm1@${p.id}`, '--store', store, '--out', out, '--format', 'raw']);
    await runAsync(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', out, join(root, day)]);
    t.pass(`qemu-img compare: ${p.id} restores identical to its day's disk`);
  }
  const pr = JSON.parse(await svOk(['prune', 'vm1', '--store', store, '--keep-count', '1', '--json'])) as { removed: string[]; kept: string[]; lockedSkipped: unknown[] };
  t.same([pr.removed, pr.kept, pr.lockedSkipped], [[p1.id], [p2.id], []], 'prune removes the older point');
  const g = JSON.parse(await svOk(['gc', '--store', store, '--json'])) as { blobsDeleted: number; lockedSkipped: number };
  t.ok(g.blobsDeleted > 0, `gc deletes the blocks only the pruned point named (${JSON.stringify(g)})`);
  t.equal(g.lockedSkipped, 0);
  const out = join(root, 'flow-after-gc.raw');
  await svOk(['restore', 'vm1', '--store', store, '--out', out, '--format', 'raw']);
  await runAsync(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', out, join(root, 'flow-day2.raw')]);
  t.pass('the kept point restores identical after gc');

  const other = await svIn(['points', '--store', url('flow', 'other'), '--state-dir', state]);
  t.equal(other.code, 1);
  t.match(other.stderr, /^error SV_ERR_STORE_STATE_DIR_MISMATCH: state folder .* belongs to store s3:\/\/flow\/vault\//mu, 'a state folder used with another store is refused');
  const repair = await svIn(['repair', '--store', store]);
  t.match(repair.stderr, /^error SV_ERR_BACKEND_UNAVAILABLE: repair of s3:\/\/flow\/vault\/: .*not implemented yet/mu, 'repair on object storage is refused with a code');
  const folderState = await svIn(['points', '--store', join(root, 'folder-store'), '--state-dir', state]);
  t.equal(folderState.code, 2, '--state-dir with a folder store is a usage error');
});

function killAfter(args: string[], delayMs: number): Promise<{ code: number | null; pid: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore', env: childEnv({ SHADOWVAULT_WORKERS: '2' }) });
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, pid: child.pid ?? 0 });
    });
  });
}

t.test('kill -9 of backups at random moments: earlier points verify, the next backup succeeds', async (t) => {
  await ceph.bucket('crash');
  const state = join(root, 'crash-state');
  const location = url('crash', 'v');
  const base = ['--store', location, '--state-dir', state];
  const disk = join(root, 'crash.raw');
  const size = 4 * MiB;
  generateDisk(disk, size, 11);
  const hashes = new Map<string, string>();
  const first = await svInJson<Point>(['backup', disk, ...base, '--source', 'vm']);
  hashes.set(first.id, sha256(disk));
  // The checks between the kills: one store opened in this process on the same state folder (its worker
  // threads and S3 connections kept from round to round), as a second process of the appliance would.
  const store = await Store.open(location, { localDir: state });
  t.teardown(async () => { await store.close(); await closePool(); });
  const rand = prng(1234);
  let killed = 0;
  const n = rounds(20, 60);
  for (let round = 0; round < n; round++) {
    changeDay(disk, size, 5 + Math.floor(rand() * 30), 100 + round);
    const before = new Set(hashes.keys());
    const delay = 100 + Math.floor(rand() * 1400);
    const { code, pid } = await killAfter(['backup', disk, ...base, '--source', 'vm'], delay);
    if (code === null) killed++;
    const ids = await store.listPointIds('vm');
    for (const id of ids) if (!before.has(id)) hashes.set(id, sha256(disk)); // committed before the kill
    t.ok([...before].every((id) => ids.includes(id)), `round ${round} (killed after ${delay} ms: ${code === null ? 'killed' : `exit ${code}`}): every earlier point is listed`);
    const v = await verify({ store, source: 'vm' });
    t.ok(v.points === ids.length && v.bad.length === 0 && v.skipped.length === 0, `round ${round}: verify of all ${ids.length} points passes (${v.blocksChecked} blocks)`);
    changeDay(disk, size, 5, 500 + round);
    const next = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
    hashes.set(next.id, sha256(disk));
    t.notOk(readdirSync(join(state, 'staging')).some((f) => f.includes(`.tmp-${pid}-`)), `round ${round}: the next backup succeeded (${next.kind}); no staging file of the killed process is left`);
  }
  t.ok(killed >= n / 2, `${killed} of ${n} backups were killed mid-way`);
  // Requests of one incremental backup (this process's S3 client; the figure the README's limits quote).
  const s3 = innermost(store.backend) as S3Backend;
  const before = s3.requestCounts();
  changeDay(disk, size, 5, 999);
  const measured = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  hashes.set(measured.id, sha256(disk));
  const after = s3.requestCounts();
  const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
  t.ok(Object.keys(delta).length > 0, `S3 requests of one incremental backup on an open store (${measured.bytesStored} bytes stored; listings served by the cache): ${JSON.stringify(delta)}`);
  const all = await store.listPointIds('vm');
  for (const id of [all[0]!, all[Math.floor(all.length / 2)]!, all[all.length - 1]!]) {
    const out = join(root, `crash-${id}.raw`);
    const r = await svIn(['restore', `vm@${id}`, ...base, '--out', out, '--format', 'raw']);
    t.equal(r.code, 0, r.stderr);
    t.equal(sha256(out), hashes.get(id), `${id} restores bit-identical`);
  }
  const g = await svInJson<{ blobsDeleted: number; orphansDeleted: number }>(['gc', ...base]);
  t.pass(`gc after the kills: ${g.blobsDeleted} blobs deleted, ${g.orphansDeleted} orphans (packs of killed runs wait out the 15 min grace)`);
  const v = await verify({ store });
  t.same([v.points, v.bad], [all.length, []], 'verify after gc: every point, nothing bad');
});

t.test('Object Lock: prune and gc skip retained objects (lockedSkipped); store extend-lock extends retention', async (t) => {
  await ceph.bucket('locked', { objectLock: true });
  const raw = ceph.client();
  const retainedUntil = async (key: string): Promise<number> =>
    (await raw.send(new GetObjectRetentionCommand({ Bucket: 'locked', Key: key }))).Retention?.RetainUntilDate?.getTime() ?? 0;
  const disk = join(root, 'locked.raw');
  generateDisk(disk, 4 * MiB, 11);
  // A store written with lock=COMPLIANCE:1: every immutable object is retained for a day.
  const locked = ['--store', url('locked', 'a', '&lock=COMPLIANCE:1'), '--state-dir', join(root, 'locked-a')];
  const a1 = await svInJson<Point>(['backup', disk, ...locked, '--source', 'vm']);
  changeDay(disk, 4 * MiB, 20, 1);
  const a2 = await svInJson<Point>(['backup', disk, ...locked, '--source', 'vm']);
  const day = Date.now() + 86_400_000;
  t.ok(Math.abs((await retainedUntil(`a/points/vm/${a1.id}.json`)) - day) < 120_000, 'the manifest is retained for a day');
  const pr = await svInJson<{ removed: string[]; kept: string[]; lockedSkipped: Array<{ id: string; retainUntil: string | null }> }>(['prune', 'vm', ...locked, '--keep-count', '1']);
  t.same([pr.removed, pr.kept], [[], [a1.id, a2.id]], 'prune deletes nothing under retention');
  t.match(pr.lockedSkipped, [{ id: a1.id, retainUntil: /^\d{4}-/u }], 'and reports the point in lockedSkipped with its date');
  const ext = await svInJson<{ objects: number; extended: number; missing: number; until: string }>(['store', 'extend-lock', ...locked, '--days', '2']);
  t.ok(ext.objects >= 5 && ext.extended === ext.objects && ext.missing === 0, `store extend-lock: ${ext.extended} of ${ext.objects} objects extended`);
  t.ok(Math.abs((await retainedUntil(`a/points/vm/${a2.id}.json`)) - Date.parse(ext.until)) < 1000, `a manifest is now retained until ${ext.until}`);

  // serve on that store: its state in <data-dir>/store-state; a gc job then extends the retention too.
  const data = join(root, 'serve-data');
  const served = await serve(['--store', url('locked', 'a', '&lock=COMPLIANCE:3'), '--data-dir', data, '--gc-at', 'never', '--verify-at', 'never']);
  t.teardown(() => { served.proc.kill('SIGTERM'); });
  const token = readFileSync(join(data, 'admin-token'), 'utf8').trim();
  const job = await api<{ id: string }>(served, token, 'POST', '/api/v1/jobs', { kind: 'gc' });
  t.equal(job.status, 202);
  let done: { state: string; result?: { extendLock?: { objects: number; extended: number } } } = { state: 'queued' };
  while (done.state === 'queued' || done.state === 'running') {
    await sleep(200);
    done = (await api<typeof done>(served, token, 'GET', `/api/v1/jobs/${job.json.id}`)).json;
  }
  t.equal(done.state, 'succeeded', `serve's gc job: ${JSON.stringify(done.result?.extendLock)}`);
  t.ok((done.result?.extendLock?.extended ?? 0) > 0, 'serve extends the retention after its gc');
  t.ok(existsSync(join(data, 'store-state', 'store-identity.json')), 'serve keeps the store state in <data-dir>/store-state');
  served.proc.kill('SIGTERM');
  t.equal(await served.exited, 0, 'serve stops cleanly');

  // gc under retention: a store written without retention whose objects extend-lock then retained while a
  // pruned point's blocks were not yet collected; gc deletes nothing retained and says so.
  const plain = ['--store', url('locked', 'b'), '--state-dir', join(root, 'locked-b')];
  generateDisk(disk, 4 * MiB, 11);
  await svInJson<Point>(['backup', disk, ...plain, '--source', 'vm']);
  changeDay(disk, 4 * MiB, 30, 2);
  copyFileSync(disk, join(root, 'locked-b2.raw'));
  const b2 = await svInJson<Point>(['backup', disk, ...plain, '--source', 'vm']);
  t.equal((await svInJson<{ removed: string[] }>(['prune', 'vm', ...plain, '--keep-count', '1'])).removed.length, 1, 'the older point is pruned (no retention yet)');
  const ext2 = await svInJson<{ extended: number }>(['store', 'extend-lock', '--store', url('locked', 'b', '&lock=COMPLIANCE:1'), '--state-dir', join(root, 'locked-b')]);
  t.ok(ext2.extended > 0, `extend-lock retains the ${ext2.extended} objects the index names`);
  const g = await svInJson<{ blobsDeleted: number; lockedSkipped: number; packsDeleted: number }>(['gc', ...plain]);
  t.ok(g.blobsDeleted > 0 && g.lockedSkipped > 0, `gc: ${g.blobsDeleted} dead blobs, ${g.lockedSkipped} retained objects skipped`);
  const out = join(root, 'locked-b-restored.raw');
  t.equal((await svIn(['restore', `vm@${b2.id}`, ...plain, '--out', out, '--format', 'raw'])).code, 0);
  t.equal(sha256(out), sha256(join(root, 'locked-b2.raw')), 'the kept point restores bit-identical after that gc');
  const v = await svInJson<{ points: number; bad: unknown[] }>(['verify', ...plain]);
  t.same([v.points, v.bad], [1, []], 'and verifies');
  const g2 = await svInJson<{ lockedSkipped: number }>(['gc', ...plain]);
  t.ok(g2.lockedSkipped >= 0, `a second gc runs too (${g2.lockedSkipped} still retained)`);
});
