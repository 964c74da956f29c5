/**
 * The volume store on S3 end to end, through the real CLI, on a real Ceph RADOS Gateway (ONE throwaway
 * one-node cluster for the whole file, test/helpers/ceph.ts):
 * - the flow as child processes: backup (creates the store), incremental backup, points, verify, restore of
 *   both points compared with `qemu-img compare`, prune, gc; the state folder's default place and identity;
 *   a state folder used with another store (SV_ERR_STORE_STATE_DIR_MISMATCH); repair refused (coded);
 * - kill -9 of backup processes at moments inside their run (6 rounds, half of them during the uploads and
 *   commit; SHADOWVAULT_SOAK=1: 60): after each kill,
 *   verify of all earlier points passes, the next backup succeeds, and no staging file of the killed process is
 *   left after it; at the end every point restores bit-identical;
 * - kill -9 of prune and of gc processes at moments inside their run (3 rounds of each; SHADOWVAULT_SOAK=1: 10):
 *   after each kill every point prune was not asked to remove is listed and all points verify; a gc after the
 *   kills deletes the killed runs' orphans (the grace of gc.ts) and aborts their incomplete multipart uploads;
 *   at the end every kept point restores bit-identical;
 * - item-level restore (`files ls`, `files get`) of a point in the bucket, and its `export` (a CLI process) read
 *   whole by nbdcopy, compared with `qemu-img compare` to the point restored;
 * - Object Lock (a bucket created with it): prune and gc skip objects under retention and report
 *   `lockedSkipped`; `store extend-lock` pushes the retention of the kept points' objects forward; `serve` on
 *   the store keeps its state in <data-dir>/store-state and extends the retention after a gc job.
 * The moments of the kills: each command is first timed once uninterrupted, then killed after a random part
 * (10-80%) of that time, so the kills land in its work (S3 open, uploads, deletes), not in node's start; half
 * of the backup kills come 0-250 ms after the child's first staging file appears (uploads and commit).
 * Two subtests run at a time (t.jobs), each on its own bucket and state folder.
 * The checks between the steps a test is about run the same CLI main() in this process (test/helpers/cli.ts).
 * Needs: apt-get install -y ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base qemu-utils libnbd-bin gdisk dosfstools
 * mtools e2fsprogs (the file-system tools of test/files/images.ts).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, GetObjectRetentionCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { changeDay, generateDisk, prng } from '../../bench/gen-disk.js';
import { api, serve } from '../api/serve-helper.js';
import { cliInProcess as svIn, cliJsonInProcess as svInJson } from '../helpers/cli.js';
import { startCeph } from '../helpers/ceph.js';
import { childEnv, CLI, requireTool, runAsync, tempDir } from '../helpers/env.js';
import { startExporter } from '../helpers/exporter.js';
import { rounds } from '../helpers/soak.js';
import { sha256, svAsync, type Point } from '../sync/helpers.js';
import { closePool } from '../../src/pool/index.js';
import { backup, fileRefs, verify } from '../../src/sync/index.js';
import { Store } from '../../storage/store.js';
import { ORPHAN_GRACE_S3_MS } from '../../storage/gc.js';
import { makeTestDisk } from '../files/images.js';
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

// Two subtests at a time (each has its own bucket and state folder): while one waits on the gateway or a child
// process, the other works.
t.jobs = 2;
t.teardown(() => closePool());

const url = (bucket: string, prefix: string, extra = ''): string => `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(ceph.endpoint)}${extra}`;

/** The CLI's main() in this process (no node start: the steps a test is not about); must succeed. */
async function svInOk(args: string[]): Promise<string> {
  const r = await svIn(args);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function svOk(args: string[]): Promise<string> {
  const r = await svAsync(args);
  if (r.code !== 0) throw new Error(`shadowvault ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

t.test('backup and incremental as CLI processes on Ceph RGW, then points, verify, restore, prune, gc', async (t) => {
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
  const listed = JSON.parse(await svInOk(['points', '--store', store, '--json'])) as Point[];
  t.same(listed.map((p) => p.id), [p1.id, p2.id], 'points lists both, oldest first');
  const v = JSON.parse(await svInOk(['verify', '--store', store, '--json'])) as { points: number; bad: unknown[]; blocksChecked: number };
  t.equal(v.points, 2);
  t.same(v.bad, [], `verify: ${v.blocksChecked} blocks, none bad`);
  for (const [p, day] of [[p1, 'flow-day1.raw'], [p2, 'flow-day2.raw']] as const) {
    const out = join(root, `flow-restored-${p.id}.raw`);
    await svInOk(['restore', `vm1@${p.id}`, '--store', store, '--out', out, '--format', 'raw']);
    await runAsync(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', out, join(root, day)]);
    t.pass(`qemu-img compare: ${p.id} restores identical to its day's disk`);
  }
  const pr = JSON.parse(await svInOk(['prune', 'vm1', '--store', store, '--keep-count', '1', '--json'])) as { removed: string[]; kept: string[]; lockedSkipped: unknown[] };
  t.same([pr.removed, pr.kept, pr.lockedSkipped], [[p1.id], [p2.id], []], 'prune removes the older point');
  const g = JSON.parse(await svInOk(['gc', '--store', store, '--json'])) as { blobsDeleted: number; lockedSkipped: number };
  t.ok(g.blobsDeleted > 0, `gc deletes the blocks only the pruned point named (${JSON.stringify(g)})`);
  t.equal(g.lockedSkipped, 0);
  const out = join(root, 'flow-after-gc.raw');
  await svInOk(['restore', 'vm1', '--store', store, '--out', out, '--format', 'raw']);
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

/**
 * Run the CLI as a child and kill -9 it `delayMs` after it started, or, with `staged` (a staging folder), that
 * long after the child's first staging file appeared there (its first pack is being written or uploaded).
 */
function killAfter(args: string[], delayMs: number, staged?: string): Promise<{ code: number | null; pid: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore', env: childEnv({ SHADOWVAULT_WORKERS: '2' }) });
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => { timer = setTimeout(() => child.kill('SIGKILL'), delayMs); };
    let poll: NodeJS.Timeout | undefined;
    if (staged === undefined) arm();
    else {
      poll = setInterval(() => {
        const mine = `.tmp-${child.pid}-`;
        if (existsSync(staged) && readdirSync(staged).some((f) => f.includes(mine))) {
          clearInterval(poll);
          poll = undefined;
          arm();
        }
      }, 10);
    }
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve({ code, pid: child.pid ?? 0 });
    });
  });
}

/** Run the CLI as a child to its end (it must succeed); its wall time in ms, the base of the kill moments. */
async function timedRun(args: string[]): Promise<number> {
  const t0 = Date.now();
  await svOk(args);
  return Date.now() - t0;
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
  changeDay(disk, size, 20, 99);
  const backupMs = await timedRun(['backup', disk, ...base, '--source', 'vm']);
  hashes.set((await svInJson<Point[]>(['points', ...base])).at(-1)!.id, sha256(disk));
  // The checks between the kills: one store opened in this process on the same state folder (its worker
  // threads and S3 connections kept from round to round), as a second process of the appliance would.
  const store = await Store.open(location, { localDir: state });
  t.teardown(() => store.close());
  const rand = prng(1234);
  let killed = 0;
  const n = rounds(6, 60);
  for (let round = 0; round < n; round++) {
    changeDay(disk, size, 5 + Math.floor(rand() * 30), 100 + round);
    const before = new Set(hashes.keys());
    // Even rounds: a moment of the whole run; odd rounds: of its uploads and commit (after its first staging file).
    const staged = round % 2 === 1 ? join(state, 'staging') : undefined;
    const delay = Math.round(staged ? 250 * rand() : backupMs * (0.1 + 0.7 * rand()));
    const { code, pid } = await killAfter(['backup', disk, ...base, '--source', 'vm'], delay, staged);
    if (code === null) killed++;
    const ids = await store.listPointIds('vm');
    for (const id of ids) if (!before.has(id)) hashes.set(id, sha256(disk)); // committed before the kill
    t.ok([...before].every((id) => ids.includes(id)), `round ${round} (${staged ? `${delay} ms after its first staging file` : `after ${delay} of ${backupMs} ms`}: ${code === null ? 'killed' : `exit ${code}`}): every earlier point is listed`);
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
  t.pass(`gc after the kills: ${g.blobsDeleted} blobs deleted, ${g.orphansDeleted} orphans`);
  const v = await verify({ store });
  t.same([v.points, v.bad], [all.length, []], 'verify after gc: every point, nothing bad');
});

t.test('kill -9 of prune and gc at random moments: the kept points verify, a gc after cleans up, points restore', async (t) => {
  await ceph.bucket('prunegc');
  const state = join(root, 'prunegc-state');
  const location = url('prunegc', 'v');
  const base = ['--store', location, '--state-dir', state];
  const disk = join(root, 'prunegc.raw');
  const size = 4 * MiB;
  generateDisk(disk, size, 21);
  const store = await Store.open(location, { localDir: state, create: true });
  t.teardown(() => store.close());
  const hashes = new Map<string, string>();
  let day = 0;
  const addPoint = async (): Promise<void> => {
    changeDay(disk, size, 25, 700 + day++);
    const p = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
    hashes.set(p.id, sha256(disk));
  };
  for (let i = 0; i < 3; i++) await addPoint();
  const pruneMs = await timedRun(['prune', 'vm', ...base, '--keep-count', '2']);
  const gcMs = await timedRun(['gc', ...base]);
  // A killed backup's leftovers, made on purpose before the rounds: an unnamed pack, an incomplete upload.
  const orphan = `packs/${'f'.repeat(16)}.pack`;
  await store.backend.put(orphan, Buffer.alloc(1024, 1));
  const raw = ceph.client();
  await raw.send(new CreateMultipartUploadCommand({ Bucket: 'prunegc', Key: `v/packs/${'e'.repeat(16)}.pack` }));
  const leftAt = Date.now();
  const rand = prng(4321);
  let killed = 0;
  const n = rounds(3, 10);
  for (let round = 0; round < n; round++) {
    await addPoint();
    await addPoint();
    const before = await store.listPointIds('vm');
    const keep = 2 + (round % 2);
    const pDelay = Math.round(pruneMs * (0.45 + 0.5 * rand())); // its deletes come after node start and the store open
    const pr = await killAfter(['prune', 'vm', ...base, '--keep-count', String(keep)], pDelay);
    const afterPrune = await store.listPointIds('vm');
    t.ok(before.slice(-keep).every((id) => afterPrune.includes(id)) && afterPrune.every((id) => before.includes(id)),
      `round ${round}, prune --keep-count ${keep} ${pr.code === null ? `killed after ${pDelay} of ${pruneMs} ms` : `exit ${pr.code}`}: the ${keep} newest points are listed (${afterPrune.length} of ${before.length})`);
    const v1 = await verify({ store, source: 'vm' });
    t.ok(v1.points === afterPrune.length && v1.bad.length === 0 && v1.skipped.length === 0, `round ${round}: all ${v1.points} points verify after the prune`);
    const gDelay = Math.round(gcMs * (0.1 + 0.7 * rand()));
    const g = await killAfter(['gc', ...base], gDelay);
    killed += (pr.code === null ? 1 : 0) + (g.code === null ? 1 : 0);
    const v2 = await verify({ store, source: 'vm' });
    t.ok(v2.points === afterPrune.length && v2.bad.length === 0 && v2.skipped.length === 0,
      `round ${round}, gc ${g.code === null ? `killed after ${gDelay} of ${gcMs} ms` : `exit ${g.code}`}: all ${v2.points} points verify`);
  }
  t.ok(killed >= n, `${killed} of ${2 * n} prune and gc runs were killed mid-way`);
  // The leftovers are older than the grace now (and the store's 1-second LastModified): a gc run to its end
  // deletes them, if one of the rounds' gc runs did not already.
  await sleep(Math.max(0, leftAt + ORPHAN_GRACE_S3_MS + 2500 - Date.now()));
  await svInOk(['prune', 'vm', ...base, '--keep-count', '2']);
  const g = await svInJson<{ orphansDeleted: number }>(['gc', ...base]);
  await t.rejects(store.backend.stat(orphan), `the unnamed pack is gone (the last gc: ${g.orphansDeleted} orphans and uploads)`);
  const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: 'prunegc', Prefix: 'v/' }));
  t.equal(uploads.Uploads?.length ?? 0, 0, 'no incomplete multipart upload is left');
  const kept = await store.listPointIds('vm');
  t.equal(kept.length, 2);
  const v = await verify({ store, source: 'vm' });
  t.same([v.points, v.bad, v.skipped], [2, [], []], 'verify after the last gc: clean');
  for (const id of kept) {
    const out = join(root, `prunegc-${id}.raw`);
    t.equal((await svIn(['restore', `vm@${id}`, ...base, '--out', out, '--format', 'raw'])).code, 0);
    t.equal(sha256(out), hashes.get(id), `${id} restores bit-identical`);
  }
});

t.test('files ls / files get / export of a point in the bucket', async (t) => {
  await ceph.bucket('items');
  const dir = join(root, 'items');
  mkdirSync(dir);
  const disk = makeTestDisk(dir);
  const state = join(root, 'items-state');
  const base = ['--store', url('items', 'v'), '--state-dir', state];
  const p = await svInJson<Point>(['backup', disk.raw, ...base, '--source', 'vm']);
  const ls = await svInJson<{ volume: number; entries: Array<{ name: string; size: number }> }>(['files', 'ls', `vm@${p.id}`, '/docs', ...base]);
  t.equal(ls.entries.filter((e) => e.name.startsWith('note-')).length, 40, `files ls /docs of the ext4 volume (${ls.volume}): the 40 notes`);
  const out = join(dir, 'got');
  const got = await svIn(['files', 'get', `vm@${p.id}`, '/hello.txt', '/docs/deep', '/big.bin', '--out', out, ...base]);
  t.equal(got.code, 0, got.stderr);
  for (const f of ['hello.txt', 'big.bin', 'deep/er/bottom.txt']) {
    const src = join(disk.extTree, f.startsWith('deep') ? `docs/${f}` : f);
    t.equal(sha256(join(out, f)), sha256(src), `files get: ${f} as written into the file system`);
  }
  // The point served by `export` (a CLI process), read whole by nbdcopy (parallel requests over the read
  // windows, ranged GETs from the bucket), then compared with the point restored to a raw file.
  const restored = join(dir, 'restored.raw');
  await svInOk(['restore', `vm@${p.id}`, ...base, '--out', restored, '--format', 'raw']);
  const started = await startExporter(t, [`vm@${p.id}`, ...base, '--listen', '127.0.0.1:0']);
  const { child, exited } = started;
  const { address } = started.serving as { address: { port: number } };
  try {
    const copied = join(dir, 'exported.raw');
    await runAsync(requireTool('nbdcopy'), [`nbd://127.0.0.1:${address.port}`, copied]);
    await runAsync(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', copied, restored]);
    t.pass('nbdcopy of the export of a point in the bucket = the point restored (qemu-img compare)');
  } finally {
    child.kill('SIGTERM');
  }
  t.equal((await exited)[0], 0, `export stops on SIGTERM ${started.stderr()}`);
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
});
