/**
 * The volume store on S3 end to end, through the real CLI, on a real Ceph RADOS Gateway (ONE throwaway
 * one-node cluster for the whole file, test/helpers/ceph.ts):
 * - the flow: backup (creates the store) and incremental backup as child processes, then points, verify,
 *   restore of both points compared with `qemu-img compare`, prune, gc; the state folder's default place and
 *   identity; a state folder used with another store (SV_ERR_STORE_STATE_DIR_MISMATCH); repair refused (coded);
 * - kill -9 at random moments of the work of backup (10 rounds), prune (5) and gc (5) processes: 20 by default,
 *   100 with SHADOWVAULT_SOAK=1 (60 + 20 + 20). The moments come from what the child has done, not from a
 *   clock started with it (test/helpers/kill-moment.ts): a random part of the command's work after it holds
 *   its lock (its store open), measured in a run to its end and again after each run that ended; 0-250 ms
 *   after the gateway lists a backup's first pack (more packs, index segment, manifest: packs are built in
 *   memory and put from there, storage/pack-memory.ts); 0-20 ms after the gateway lists a backup's multipart
 *   upload of a 17 MiB pack (1 round; 4 soak). After each kill:
 *   - backup: every earlier point is listed; the points it committed and the next backup's verify (only new
 *     points can change: a backup deletes nothing of an earlier point's); no local pack file of the killed
 *     process is left after the next backup; a multipart kill leaves its incomplete upload;
 *   - prune: the points it must keep are listed, and every listed point verifies;
 *   - gc: every point verifies;
 *   at the end of each: every point restores bit-identical to the disk it was taken of, and a gc after the
 *   grace of gc.ts deletes the killed runs' orphans (and an unnamed pack made on purpose) and aborts their
 *   incomplete multipart uploads: ListMultipartUploads lists none;
 * - item-level restore (`files ls`, `files get`) of a point in the bucket, and its `export` (a CLI process) read
 *   whole by nbdcopy, compared with `qemu-img compare` to the point restored;
 * - Object Lock (a bucket created with it): prune and gc skip objects under retention and report
 *   `lockedSkipped`; `store extend-lock` pushes the retention of the kept points' objects forward; `serve` on
 *   the store keeps its state in <data-dir>/store-state and extends the retention after a gc job.
 * Three subtests run at a time (t.jobs), each on its own bucket and state folder. The steps between the ones a
 * test is about run in this process: the library (backup, verify, restore on an open Store) or the CLI's
 * main() (test/helpers/cli.ts), ordered by a PoolGuard (an in-process CLI command closes the worker pool).
 * CLI children start without tap's loader hook (nodeCommand): it cost each ~0.6 CPU-s.
 * Needs: apt-get install -y ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base qemu-utils libnbd-bin gdisk dosfstools
 * mtools e2fsprogs (the file-system tools of test/files/images.ts).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, GetObjectRetentionCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { changeDay, generateDisk, prng } from '../../bench/gen-disk.js';
import { api, serve } from '../api/serve-helper.js';
import { cliInProcess, cliJsonInProcess } from '../helpers/cli.js';
import { startCeph } from '../helpers/ceph.js';
import { requireTool, runAsync, tempDir } from '../helpers/env.js';
import { startExporter } from '../helpers/exporter.js';
import { after, cliChild, holdsLock, workMs, type Moment } from '../helpers/kill-moment.js';
import { PoolGuard } from '../helpers/pool-guard.js';
import { rounds } from '../helpers/soak.js';
import { sha256, svAsync, type Point } from '../sync/helpers.js';
import { closePool } from '../../src/pool/index.js';
import { backup as backupLib, fileRefs, restore as restoreLib, verify as verifyLib } from '../../src/sync/index.js';
import { processAlive } from '../../src/util/stale-temps.js';
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
t.jobs = 3;
t.teardown(() => closePool());

// The subtests share this process's worker pool; an in-process CLI command closes it at its end (as the real
// process does), so those run alone and the library calls between them (PoolGuard).
const guard = new PoolGuard();
const svIn = (args: string[]): ReturnType<typeof cliInProcess> => guard.exclusive(() => cliInProcess(args));
const svInJson = <T>(args: string[]): Promise<T> => guard.exclusive(() => cliJsonInProcess<T>(args));
const backup = (o: Parameters<typeof backupLib>[0]): ReturnType<typeof backupLib> => guard.shared(() => backupLib(o));
const verify = (o: Parameters<typeof verifyLib>[0]): ReturnType<typeof verifyLib> => guard.shared(() => verifyLib(o));
const restore = (o: Parameters<typeof restoreLib>[0]): ReturnType<typeof restoreLib> => guard.shared(() => restoreLib(o));

// The file-system test disk of the `files` subtest, made before any subtest runs: makeTestDisk runs mkfs and
// mtools synchronously, and a second or more of blocked event loop stopped the other subtests' progress probes
// (a kill round's child then ran to its end unseen).
const itemsDir = join(root, 'items');
mkdirSync(itemsDir);
const itemsDisk = makeTestDisk(itemsDir);

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
  // verify and restore through the library on a store opened here (an in-process CLI command would close
  // the worker pool the other subtests use at its end: its worker threads would start again).
  const opened = await Store.open(store, { localDir: state });
  t.teardown(() => opened.close());
  const v = await verify({ store: opened });
  t.equal(v.points, 2);
  t.same(v.bad, [], `verify: ${v.blocksChecked} blocks, none bad`);
  for (const [p, day] of [[p1, 'flow-day1.raw'], [p2, 'flow-day2.raw']] as const) {
    const out = join(root, `flow-restored-${p.id}.raw`);
    await restore({ store: opened, source: 'vm1', point: p.id, out, format: 'raw' });
    await runAsync(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', out, join(root, day)]);
    t.pass(`qemu-img compare: ${p.id} restores identical to its day's disk`);
  }
  const pr = JSON.parse(await svInOk(['prune', 'vm1', '--store', store, '--keep-count', '1', '--json'])) as { removed: string[]; kept: string[]; lockedSkipped: unknown[] };
  t.same([pr.removed, pr.kept, pr.lockedSkipped], [[p1.id], [p2.id], []], 'prune removes the older point');
  const g = JSON.parse(await svInOk(['gc', '--store', store, '--json'])) as { blobsDeleted: number; lockedSkipped: number };
  t.ok(g.blobsDeleted > 0, `gc deletes the blocks only the pruned point named (${JSON.stringify(g)})`);
  t.equal(g.lockedSkipped, 0);
  const out = join(root, 'flow-after-gc.raw');
  await restore({ store: opened, source: 'vm1', out, format: 'raw' });
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

/** The incomplete multipart uploads under `prefix` of `bucket`, listed by the gateway (ListMultipartUploads). */
async function uploadsIn(raw: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const r = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (r.Uploads ?? []).map((u) => u.UploadId ?? '');
}

/** The objects under `prefix` of `bucket` (ListObjectsV2, one page: the tests' buckets hold a few hundred). */
async function objectsIn(raw: S3Client, bucket: string, prefix: string): Promise<string[]> {
  return ((await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key ?? '');
}

/** A disk of `size` random (incompressible) bytes: its one pack is over the multipart threshold (16 MiB). */
function randomDisk(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < size; at += MiB) writeSync(fd, randomBytes(MiB), 0, MiB, at);
  } finally {
    closeSync(fd);
  }
}

/** Wait until `ms` have passed since `since` (the grace of gc.ts for a killed run's leftovers, plus a margin). */
async function graceAfter(since: number, ms = ORPHAN_GRACE_S3_MS + 2500): Promise<void> {
  await sleep(Math.max(0, since + ms - Date.now()));
}

t.test('kill -9 of backups at random moments: earlier points kept, the next backup succeeds, all restore bit-identical', async (t) => {
  await ceph.bucket('crash');
  const raw = ceph.client();
  const state = join(root, 'crash-state');
  const staging = join(state, 'staging'); // where packs were staged before they were built in memory
  const location = url('crash', 'v');
  const base = ['--store', location, '--state-dir', state];
  const disk = join(root, 'crash.raw');
  const big = join(root, 'crash-big.raw');
  const size = 4 * MiB;
  generateDisk(disk, size, 11);
  const hashes = new Map<string, string>(); // source@id → sha256 of the disk it was taken of
  const store = await Store.open(location, { localDir: state, create: true });
  t.teardown(() => store.close());
  const first = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  hashes.set(`vm@${first.id}`, sha256(disk));
  // The length of a backup's work: from the moment it holds the data source's lock (node started, store open)
  // to its exit, in a run to its end.
  changeDay(disk, size, 20, 99);
  const lock = (source: string): Moment => holdsLock(join(state, 'locks', `source-${source}.lock`));
  let backupMs = await workMs(['backup', disk, ...base, '--source', 'vm'], lock('vm'));
  hashes.set(`vm@${(await store.listPointIds('vm')).at(-1)!}`, sha256(disk));
  const rand = prng(1234);
  let killed = 0;
  const leftUploads: string[] = [];
  let multipartRounds = 0;
  let lastMultipartKill = 0;
  const n = rounds(10, 60);
  for (let round = 0; round < n; round++) {
    // Round kinds: a moment of the work after the lock; 0-250 ms after the gateway lists its first pack (more
    // packs, index segment, manifest); during the multipart upload of a 17 MiB pack (a new random disk of
    // source "big"), once the gateway lists the upload (1 round; 4 with SHADOWVAULT_SOAK=1: memstore keeps data
    // in RAM).
    const kind = round % 5 === 1 && multipartRounds < rounds(1, 4) ? 'multipart' : round % 2 === 1 ? 'put' : 'lock';
    const source = kind === 'multipart' ? 'big' : 'vm';
    const file = kind === 'multipart' ? big : disk;
    if (kind === 'multipart') {
      randomDisk(big, 17 * MiB);
      multipartRounds++;
    } else changeDay(disk, size, 5 + Math.floor(rand() * 30), 100 + round);
    const before = new Set([...(await store.listPointIds('vm')).map((id) => `vm@${id}`), ...(await store.listPointIds('big')).map((id) => `big@${id}`)]);
    const uploadsBefore = new Set(await uploadsIn(raw, 'crash', 'v/'));
    const packsBefore = new Set(await objectsIn(raw, 'crash', 'v/packs/'));
    let moment: Moment;
    let delay: number;
    let when: string;
    if (kind === 'lock') {
      delay = Math.round(backupMs * (0.05 + 0.75 * rand()));
      moment = lock(source);
      when = `${delay} of ${backupMs} ms into its work`;
    } else if (kind === 'put') {
      delay = Math.round(250 * rand());
      moment = after(lock(source), async () => (await objectsIn(raw, 'crash', 'v/packs/')).some((k) => !packsBefore.has(k)));
      when = `${delay} ms after its first pack was listed`;
    } else {
      delay = Math.round(20 * rand());
      moment = after(lock(source), async () => (await uploadsIn(raw, 'crash', 'v/packs/')).some((id) => !uploadsBefore.has(id)));
      when = `${delay} ms after its multipart upload was listed`;
    }
    const r = await cliChild(['backup', file, ...base, '--source', source], moment, delay);
    if (r.code === null) killed++;
    // A run to its end measures the work again (the load changes): the next kill moments follow it.
    else if (kind === 'lock' && r.code === 0 && r.momentMs !== undefined) backupMs = r.totalMs - r.momentMs;
    const what = `round ${round} (${source}, ${r.code === null ? `killed ${when}` : `exit ${r.code}, ${r.momentMs === undefined ? 'moment not seen' : when}`})`;
    const ids = await store.listPointIds(source);
    const listed = new Set([...before].filter((p) => !p.startsWith(`${source}@`)).concat(ids.map((id) => `${source}@${id}`)));
    t.ok([...before].every((p) => listed.has(p)), `${what}: every earlier point is listed`);
    const fresh = ids.filter((id) => !before.has(`${source}@${id}`)); // committed before the kill
    if (kind === 'multipart' && r.code === null) {
      lastMultipartKill = Date.now();
      const left = (await uploadsIn(raw, 'crash', 'v/')).filter((id) => !uploadsBefore.has(id));
      leftUploads.push(...left);
      // Killed after its CompleteMultipartUpload (its timer late on a loaded machine): an unnamed pack instead.
      const packs = left.length || fresh.length ? [] : (await objectsIn(raw, 'crash', 'v/packs/')).filter((k) => !packsBefore.has(k));
      t.ok(left.length > 0 || fresh.length > 0 || packs.length > 0,
        `${what}: its incomplete multipart upload is left (${left.length})${packs.length ? `, or its completed pack (${packs.length})` : ''}${fresh.length ? ', or its point committed' : ''}`);
    }
    for (const id of fresh) hashes.set(`${source}@${id}`, sha256(file));
    // The next backup of the same source, in this process (its store open since the start).
    if (kind !== 'multipart') changeDay(disk, size, 5, 500 + round);
    const next = await backup({ store, source, disks: fileRefs([file]) });
    hashes.set(`${source}@${next.id}`, sha256(file));
    // Only the new points can have changed: a backup writes new objects and deletes none of an earlier point's.
    // Every point is restored and compared at the end.
    for (const id of [...fresh, next.id]) {
      const v = await verify({ store, source, point: id });
      t.ok(v.points === 1 && v.bad.length === 0 && v.skipped.length === 0, `${what}: ${source}@${id} verifies (${v.blocksChecked} blocks)${id === next.id ? ', the next backup' : ', committed before the kill'}`);
    }
    // Packs are built in memory: a killed backup leaves no local file (cleanStaging, at each backup, would remove
    // the staging files of processes that no longer run; a pid in use again keeps them, by that rule).
    const stale = existsSync(staging) ? readdirSync(staging).filter((f) => f.includes(`.tmp-${r.pid}-`)) : [];
    t.ok(stale.length === 0 || processAlive(r.pid), `${what}: the next backup succeeded (${next.kind}); no local pack file of the killed process is left${stale.length ? ` (pid ${r.pid} runs again: kept)` : ''}`);
  }
  t.ok(killed >= n / 2, `${killed} of ${n} backups were killed mid-way`);
  // Requests of one incremental backup (this process's S3 client; the figure the README's limits quote).
  const s3 = innermost(store.backend) as S3Backend;
  const countsBefore = s3.requestCounts();
  changeDay(disk, size, 5, 999);
  const measured = await backup({ store, source: 'vm', disks: fileRefs([disk]) });
  hashes.set(`vm@${measured.id}`, sha256(disk));
  const countsAfter = s3.requestCounts();
  const delta = Object.fromEntries(Object.entries(countsAfter).map(([k, v]) => [k, v - (countsBefore[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
  t.ok(Object.keys(delta).length > 0, `S3 requests of one incremental backup on an open store (${measured.bytesStored} bytes stored; listings served by the cache): ${JSON.stringify(delta)}`);
  // Every point, of both sources, restores bit-identical to the disk it was taken of.
  let restored = 0;
  for (const source of ['vm', 'big']) {
    for (const id of await store.listPointIds(source)) {
      const out = join(root, `crash-${source}-${id}.raw`);
      await restore({ store, source, point: id, out, format: 'raw' });
      const same = sha256(out) === hashes.get(`${source}@${id}`);
      rmSync(out);
      if (!same) t.fail(`${source}@${id} does not restore bit-identical`);
      else restored++;
    }
  }
  t.equal(restored, hashes.size, `all ${hashes.size} points restore bit-identical`);
  // The killed runs' leftovers: gc, once they are older than its grace, deletes their packs and aborts their
  // incomplete multipart uploads.
  t.pass(`${leftUploads.length} incomplete multipart uploads of killed backups were listed after their kills`);
  await graceAfter(lastMultipartKill);
  const g = await svInJson<{ blobsDeleted: number; orphansDeleted: number }>(['gc', ...base]);
  t.same(await uploadsIn(raw, 'crash', 'v/'), [], `gc after the kills (${g.orphansDeleted} orphans and uploads): no incomplete multipart upload is left`);
  const v = await verify({ store });
  t.same([v.points, v.bad, v.skipped], [hashes.size, [], []], 'verify after gc: every point, nothing bad');
});

/** A store in this process with three points of source "vm" (4 MiB disk), for the prune and gc kill rounds. */
async function pointsStore(t: Test, name: string): Promise<{ store: Store; base: string[]; state: string; addPoint(): Promise<void>; hashes: Map<string, string> }> {
  await ceph.bucket(name);
  const state = join(root, `${name}-state`);
  const location = url(name, 'v');
  const disk = join(root, `${name}.raw`);
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
  return { store, base: ['--store', location, '--state-dir', state], state, addPoint, hashes };
}

/** Every listed point of "vm" verifies; restored, each is bit-identical to its disk. */
async function restoresAll(t: Test, store: Store, hashes: Map<string, string>, name: string): Promise<void> {
  const kept = await store.listPointIds('vm');
  const v = await verify({ store, source: 'vm' });
  t.same([v.points, v.bad, v.skipped], [kept.length, [], []], `verify of the ${kept.length} points: clean`);
  for (const id of kept) {
    const out = join(root, `${name}-${id}.raw`);
    await restore({ store, source: 'vm', point: id, out, format: 'raw' });
    t.equal(sha256(out), hashes.get(id), `${id} restores bit-identical`);
    rmSync(out);
  }
}

t.test('kill -9 of prune at random moments of its work: the points it keeps verify and restore', async (t) => {
  const { store, base, state, addPoint, hashes } = await pointsStore(t, 'prune');
  const lock = holdsLock(join(state, 'locks', 'source-vm.lock'));
  let pruneMs = await workMs(['prune', 'vm', ...base, '--keep-count', '2'], lock);
  const rand = prng(4321);
  let killed = 0;
  const n = rounds(5, 20);
  for (let round = 0; round < n; round++) {
    await addPoint();
    await addPoint();
    const before = await store.listPointIds('vm');
    const keep = 2 + (round % 2);
    const delay = Math.round(pruneMs * (0.05 + 0.75 * rand()));
    const r = await cliChild(['prune', 'vm', ...base, '--keep-count', String(keep)], lock, delay);
    if (r.code === null) killed++;
    else if (r.code === 0 && r.momentMs !== undefined) pruneMs = r.totalMs - r.momentMs; // the work measured again
    const after = await store.listPointIds('vm');
    t.ok(before.slice(-keep).every((id) => after.includes(id)) && after.every((id) => before.includes(id)),
      `round ${round}, prune --keep-count ${keep} ${r.code === null ? `killed ${delay} of ${pruneMs} ms into its work` : `exit ${r.code}`}: the ${keep} newest points are listed (${after.length} of ${before.length})`);
    // A prune deletes only the points it removes: the points still listed are the ones to check.
    const v = await verify({ store, source: 'vm' });
    t.ok(v.points === after.length && v.bad.length === 0 && v.skipped.length === 0, `round ${round}: all ${v.points} listed points verify`);
  }
  t.ok(killed >= Math.ceil(0.4 * n), `${killed} of ${n} prune runs were killed mid-way`);
  t.same((await svInJson<{ kept: string[] }>(['prune', 'vm', ...base, '--keep-count', '2'])).kept.length, 2, 'a prune run to its end after the kills keeps 2');
  await restoresAll(t, store, hashes, 'prune');
});

t.test('kill -9 of gc at random moments of its work: every point verifies, a gc after cleans up, points restore', async (t) => {
  const { store, base, state, addPoint, hashes } = await pointsStore(t, 'gcbucket');
  const raw = ceph.client();
  const lock = holdsLock(join(state, 'locks', 'gc.lock'));
  await svInOk(['prune', 'vm', ...base, '--keep-count', '2']);
  let gcMs = await workMs(['gc', ...base], lock);
  // A killed backup's leftovers, made on purpose before the rounds: an unnamed pack, an incomplete upload.
  const orphan = `packs/${'f'.repeat(16)}.pack`;
  await store.backend.put(orphan, Buffer.alloc(1024, 1));
  await raw.send(new CreateMultipartUploadCommand({ Bucket: 'gcbucket', Key: `v/packs/${'e'.repeat(16)}.pack` }));
  const leftAt = Date.now();
  const rand = prng(5678);
  let killed = 0;
  const n = rounds(5, 20);
  for (let round = 0; round < n; round++) {
    // Two new points and a prune (in this process) before each gc: it has dead blocks to find and delete.
    await addPoint();
    await addPoint();
    await svInOk(['prune', 'vm', ...base, '--keep-count', '2']);
    const listed = await store.listPointIds('vm');
    const delay = Math.round(gcMs * (0.05 + 0.75 * rand()));
    const r = await cliChild(['gc', ...base], lock, delay);
    if (r.code === null) killed++;
    else if (r.code === 0 && r.momentMs !== undefined) gcMs = r.totalMs - r.momentMs; // the work measured again
    // gc deletes objects any point might name: every point is checked after each kill.
    const v = await verify({ store, source: 'vm' });
    t.ok(v.points === listed.length && v.bad.length === 0 && v.skipped.length === 0,
      `round ${round}, gc ${r.code === null ? `killed ${delay} of ${gcMs} ms into its work` : `exit ${r.code}`}: all ${v.points} points verify`);
  }
  t.ok(killed >= Math.ceil(0.4 * n), `${killed} of ${n} gc runs were killed mid-way`);
  // The leftovers are older than the grace now: a gc run to its end deletes them, if no killed one did.
  await graceAfter(leftAt);
  const g = await svInJson<{ orphansDeleted: number }>(['gc', ...base]);
  await t.rejects(store.backend.stat(orphan), `the unnamed pack is gone (the last gc: ${g.orphansDeleted} orphans and uploads)`);
  t.same(await uploadsIn(raw, 'gcbucket', 'v/'), [], 'no incomplete multipart upload is left (ListMultipartUploads)');
  await restoresAll(t, store, hashes, 'gc');
});

t.test('files ls / files get / export of a point in the bucket', async (t) => {
  const dir = itemsDir;
  const disk = itemsDisk;
  await ceph.bucket('items');
  const state = join(root, 'items-state');
  const base = ['--store', url('items', 'v'), '--state-dir', state];
  const store = await Store.open(url('items', 'v'), { localDir: state, create: true });
  t.teardown(() => store.close());
  const p = await backup({ store, source: 'vm', disks: fileRefs([disk.raw]) });
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
  await restore({ store, source: 'vm', point: p.id, out: restored, format: 'raw' });
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
  // The backups through the library (the CLI commands below are the point here).
  const storeA = await Store.open(url('locked', 'a', '&lock=COMPLIANCE:1'), { localDir: join(root, 'locked-a'), create: true });
  const a1 = await backup({ store: storeA, source: 'vm', disks: fileRefs([disk]) });
  changeDay(disk, 4 * MiB, 20, 1);
  const a2 = await backup({ store: storeA, source: 'vm', disks: fileRefs([disk]) });
  await storeA.close();
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
  const storeB = await Store.open(url('locked', 'b'), { localDir: join(root, 'locked-b'), create: true });
  t.teardown(() => storeB.close());
  await backup({ store: storeB, source: 'vm', disks: fileRefs([disk]) });
  changeDay(disk, 4 * MiB, 30, 2);
  copyFileSync(disk, join(root, 'locked-b2.raw'));
  const b2 = await backup({ store: storeB, source: 'vm', disks: fileRefs([disk]) });
  t.equal((await svInJson<{ removed: string[] }>(['prune', 'vm', ...plain, '--keep-count', '1'])).removed.length, 1, 'the older point is pruned (no retention yet)');
  const ext2 = await svInJson<{ extended: number }>(['store', 'extend-lock', '--store', url('locked', 'b', '&lock=COMPLIANCE:1'), '--state-dir', join(root, 'locked-b')]);
  t.ok(ext2.extended > 0, `extend-lock retains the ${ext2.extended} objects the index names`);
  const g = await svInJson<{ blobsDeleted: number; lockedSkipped: number; packsDeleted: number }>(['gc', ...plain]);
  t.ok(g.blobsDeleted > 0 && g.lockedSkipped > 0, `gc: ${g.blobsDeleted} dead blobs, ${g.lockedSkipped} retained objects skipped`);
  const out = join(root, 'locked-b-restored.raw');
  await restore({ store: storeB, source: 'vm', point: b2.id, out, format: 'raw' });
  t.equal(sha256(out), sha256(join(root, 'locked-b2.raw')), 'the kept point restores bit-identical after that gc');
  const v = await verify({ store: storeB });
  t.same([v.points, v.bad], [1, []], 'and verifies');
});
