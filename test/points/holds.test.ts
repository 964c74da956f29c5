/**
 * Holds (storage/holds.ts): a point open for browsing is kept by prune (retention and explicit ids; the result
 * and the CLI say it is held) and its blocks survive gc; it reads back intact, then is pruned once released. A
 * holder killed with SIGKILL leaves a hold that no longer counts and is cleaned; a hold of another host counts
 * until its lease expires; renewal pushes the expiry; a hold on a point that is gone is refused.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openPointImage } from '../../src/points/image.js';
import { closePool } from '../../src/pool/index.js';
import { backup, gc, prune } from '../../src/sync/index.js';
import { listHolds, takeHold } from '../../storage/holds.js';
import { Store } from '../../storage/store.js';
import { childEnv, REPO_ROOT, tempDir } from '../helpers/env.js';
import { seeded } from '../formats/disk-image-contract.js';
import { sv } from '../sync/helpers.js';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(closePool);

const MiB = 1 << 20;

function disk(seed: number): Buffer {
  const buf = Buffer.alloc(8 * MiB);
  const rnd = seeded(seed);
  for (let i = 0; i < 3 * MiB; i++) buf[i] = (rnd() * 256) | 0;
  return buf;
}

/** A store with three points of vm1, each with different content (so prune + gc would free blocks). */
async function threePoints(dir: string): Promise<{ store: string; ids: string[]; data: Buffer[] }> {
  const store = join(dir, 'store');
  const path = join(dir, 'disk.raw');
  const ids: string[] = [];
  const data: Buffer[] = [];
  for (const seed of [1, 2, 3]) {
    data.push(disk(seed));
    writeFileSync(path, data[data.length - 1]!);
    ids.push((await backup({ store, source: 'vm1', disks: fileRefs([path]) })).id);
  }
  return { store, ids, data };
}

t.test('prune and gc during a browse leave the held point intact', async (t) => {
  const dir = tempDir(t, 'sv-holds-');
  const { store, ids, data } = await threePoints(dir);
  const img = await openPointImage({ store, source: 'vm1', point: ids[0], hold: { operation: 'browse test' } });
  t.teardown(() => img.close());

  const r = await prune({ store, source: 'vm1', retention: { maxCount: 1 } });
  t.same(r.removed, [ids[1]], 'retention removes the unheld point');
  t.same(r.held.map((h) => h.id), [ids[0]], 'and reports the held one');
  t.match(r.held[0]!.holders[0], /browse test \(pid \d+ on /);
  t.ok(r.kept.includes(ids[0]!));

  const cli = sv(['prune', 'vm1', '--store', store, '--point', ids[0]!]);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, new RegExp(`kept held vm1@${ids[0]}: in use by browse test`), 'the CLI says the point is held');
  t.match(cli.stdout, /removed 0 point/);

  const g = await gc({ store, full: true });
  t.ok(g.blobsDeleted > 0, 'gc freed the pruned point\'s blocks');
  t.ok((await img.read(0, 8 * MiB)).equals(data[0]!), 'the held point reads back intact after prune and gc');
  const again = await openPointImage({ store, source: 'vm1', point: ids[0], hold: false });
  t.ok((await again.read(0, 8 * MiB)).equals(data[0]!), 'and so does a fresh open of it');
  await again.close();

  await img.close();
  const opened = await Store.open(store);
  t.equal((await listHolds(opened, 'vm1')).size, 0, 'close releases the hold');
  const after = await prune({ store, source: 'vm1', pointIds: [ids[0]!] });
  t.same(after.removed, [ids[0]], 'released, the point is pruned');
  await t.rejects(takeHold(opened, 'vm1', ids[0]!, { operation: 'late' }), { code: 'SV_ERR_STORE_POINT_NOT_FOUND' }, 'a hold on a pruned point is refused');
  t.same(readdirSync(join(store, 'holds', 'vm1')), [], 'a refused hold leaves no file');
});

t.test('a killed holder\'s hold stops counting and is cleaned; a remote hold expires', async (t) => {
  const dir = tempDir(t, 'sv-holds-kill-');
  const { store, ids } = await threePoints(dir);
  const script = `
    const { openPointImage } = await import(${JSON.stringify(join(REPO_ROOT, 'build/src/points/image.js'))});
    await openPointImage({ store: ${JSON.stringify(store)}, source: 'vm1', point: ${JSON.stringify(ids[0])}, hold: { operation: 'doomed', ttlMs: 600000 } });
    process.stdout.write('held\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('held')) resolve(); });
    child.on('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  const opened = await Store.open(store);
  const live = await listHolds(opened, 'vm1');
  t.same([...live.keys()], [ids[0]], 'the child holds the point');
  t.equal(live.get(ids[0]!)![0]!.pid, child.pid);
  const held = await prune({ store, source: 'vm1', pointIds: [ids[0]!] });
  t.same(held.removed, [], 'prune keeps it while the holder lives');
  child.removeAllListeners('exit');
  await new Promise<void>((resolve) => { child.on('exit', () => resolve()); child.kill('SIGKILL'); });
  t.equal((await listHolds(opened, 'vm1')).size, 0, 'the dead holder\'s hold does not count (its lease was 10 minutes)');
  t.same(readdirSync(join(store, 'holds', 'vm1')), [], 'and its file is cleaned');
  const gone = await prune({ store, source: 'vm1', pointIds: [ids[0]!] });
  t.same(gone.removed, [ids[0]], 'prune removes the point');

  // A holder on another host: only its lease tells whether it still reads.
  const expiresAt = Date.now() + 60_000;
  const file = join(store, 'holds', 'vm1', `${ids[1]}.abcd.json`);
  writeFileSync(file, JSON.stringify({ source: 'vm1', point: ids[1], holder: 'abcd', operation: 'export', pid: 1, host: 'elsewhere', boot: 'x', since: '', expiresAt }));
  t.same([...(await listHolds(opened, 'vm1', expiresAt - 1)).keys()], [ids[1]], 'a remote hold counts before it expires');
  t.equal((await listHolds(opened, 'vm1', expiresAt + 1)).size, 0, 'and not after');
  t.notOk(existsSync(file), 'the expired hold is cleaned');
  writeFileSync(join(store, 'holds', 'vm1', 'garbage.json'), '{not json');
  t.equal((await listHolds(opened, 'vm1')).size, 0, 'an unreadable hold file counts as expired');
});

t.test('renewal pushes the expiry forward', async (t) => {
  const dir = tempDir(t, 'sv-holds-renew-');
  const { store, ids } = await threePoints(dir);
  const opened = await Store.open(store);
  const hold = await takeHold(opened, 'vm1', ids[2]!, { operation: 'renew test', ttlMs: 60_000 });
  t.teardown(() => hold.release());
  const first = hold.expiresAt;
  await new Promise((r) => setTimeout(r, 20));
  await hold.renew();
  t.ok(hold.expiresAt > first, 'expiresAt moved');
  const rec = (await listHolds(opened, 'vm1')).get(ids[2]!)![0]!;
  t.equal(rec.expiresAt, hold.expiresAt, 'the file says the new expiry');
  // A hold that lapsed and was cleaned is granted again by the renewal while its point exists.
  await listHolds(opened, 'vm1', hold.expiresAt + 1);
  t.notOk(existsSync(hold.path));
  await hold.renew();
  t.ok(existsSync(hold.path), 'renewal re-creates a lapsed hold of a point that still exists');
  await hold.release();
  t.notOk(existsSync(hold.path), 'release removes the file');
});
