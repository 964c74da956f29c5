/**
 * The store commands as a user runs them (the real launcher, child processes, real files): backup with and
 * without --changed, points --json, restore @latest/@ID bit-identical, check, verify (flipped byte found,
 * affected points named, next sync repairs), prune (days + count), gc, locks. The locks case, and the exit
 * codes of a bad change list and of verify finding damage, run the launcher in child processes; the other
 * steps run the CLI's main() in this process (test/helpers/cli.ts), saving a process start per command.
 */
import { readdirSync, readFileSync, statSync, writeFileSync, openSync, writeSync, closeSync, readSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk } from '../../bench/gen-disk.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { cliInProcess as svIn, cliJsonInProcess as svInJson } from '../helpers/cli.js';
import { sha256, sv, svAsync, svJson, type Point } from './helpers.js';

const MiB = 1 << 20;

t.test('backup, incremental, express full, points, restore any point bit-identical', async (t) => {
  const dir = tempDir(t);
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  const size = 16 * MiB;
  generateDisk(disk, size, 7);
  const h1 = sha256(disk);
  const p1 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  t.equal(p1.kind, 'initial');
  t.match(p1, { id: /^\d{8}T\d{9}Z-[0-9a-f]{6}$/, consistency: 'crash', bytesRead: size });
  const changes = changeDay(disk, size, 2, 11);
  writeFileSync(join(dir, 'ch.json'), JSON.stringify(changes));
  const h2 = sha256(disk);
  const p2 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1', '--changed', join(dir, 'ch.json')]);
  t.equal(p2.kind, 'incremental');
  t.equal(p2.bytesRead, changes.length * 65536, 'only the changed extents are read');
  t.equal(p2.bytesChanged, changes.length * 65536);
  changeDay(disk, size, 3, 12);
  const h3 = sha256(disk);
  const p3 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  t.equal(p3.kind, 'express-full');
  t.ok(p3.bytesChanged > 0 && p3.bytesChanged <= 0.04 * size, 'digest comparison finds the changed blocks');
  const points = await svInJson<Point[]>(['points', '--store', store, 'vm1']);
  t.same(points.map((p) => p.id), [p1.id, p2.id, p3.id], 'oldest first');
  for (const [ref, h] of [[`vm1@${p1.id}`, h1], [`vm1@${p2.id.slice(0, 22)}`, h2], ['vm1@latest', h3], ['vm1', h3]] as const) {
    const out = join(dir, `r-${ref.replace(/[@]/g, '_')}.raw`);
    const r = await svIn(['restore', ref, '--store', store, '--out', out, '--format', 'raw']);
    t.equal(r.code, 0, r.stderr);
    t.equal(sha256(out), h, `${ref} restores bit-identical`);
  }
  const again = await svIn(['restore', 'vm1', '--store', store, '--out', join(dir, 'r-vm1.raw')]);
  t.equal(again.code, 1);
  t.match(again.stderr, /SV_ERR_FORMAT_OUTPUT_EXISTS/, 'never over an existing file');
  t.equal((await svIn(['restore', 'vm1', '--store', store, '--out', join(dir, 'r-vm1.raw'), '--force'])).code, 0, '--force replaces');
  const qemuImg = requireTool('qemu-img');
  const vhd = join(dir, 'r.vhd');
  t.equal((await svIn(['restore', 'vm1', '--store', store, '--out', vhd, '--format', 'vhd'])).code, 0);
  t.match(run(qemuImg, ['compare', '-f', 'vpc', vhd, '-F', 'raw', disk]), /Images are identical/, 'VHD restore: qemu-img says identical');
  const vhdx = join(dir, 'r.vhdx');
  t.equal((await svIn(['restore', `vm1@${p1.id}`, '--store', store, '--out', vhdx, '--format', 'vhdx'])).code, 0);
  const first = join(dir, 'first.raw');
  t.equal((await svIn(['restore', `vm1@${p1.id}`, '--store', store, '--out', first])).code, 0);
  t.match(run(qemuImg, ['compare', '-f', 'vhdx', vhdx, '-F', 'raw', first]), /Images are identical/, 'VHDX restore of the first point: qemu-img says identical');
  t.match(run(qemuImg, ['check', vhdx]), /No errors were found/);
  t.equal((await svIn(['restore', 'vm1', '--store', store, '--disk', '3', '--out', join(dir, 'x.raw')])).stderr.split(' ')[1], 'SV_ERR_SYNC_DISK_NOT_FOUND:');
  // consistency check: replica equals source → nothing changed
  const c = await svInJson<Point>(['check', disk, '--store', store, '--source', 'vm1']);
  t.equal(c.kind, 'consistency-check');
  t.equal(c.bytesChanged, 0);
  const bad = sv(['backup', disk, '--store', store, '--source', 'vm1', '--changed', join(dir, 'nope.json')]);
  t.equal(bad.code, 1);
  writeFileSync(join(dir, 'bad.json'), '[[0, -5]]');
  t.match((await svIn(['backup', disk, '--store', store, '--source', 'vm1', '--changed', join(dir, 'bad.json')])).stderr, /SV_ERR_SYNC_BAD_CHANGE_LIST/);
});

t.test('verify finds a flipped byte, names the points, the next sync repairs it', async (t) => {
  const dir = tempDir(t);
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  generateDisk(disk, 16 * MiB, 3);
  const p1 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  const p2 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  t.equal((await svInJson<{ bad: unknown[] }>(['verify', '--store', store])).bad.length, 0);
  // flip a byte in the middle of the (only) pack
  const pack = join(store, 'packs', readdirSync(join(store, 'packs')).find((n) => n.endsWith('.pack'))!);
  const fd = openSync(pack, 'r+');
  const pos = Math.floor(statSync(pack).size / 2);
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, pos);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, pos);
  closeSync(fd);
  const r = sv(['verify', '--store', store, '--json']);
  t.equal(r.code, 1, 'exit 1 when bad blocks are found');
  const v = JSON.parse(r.stdout) as { bad: Array<{ digest: string; code: string; points: string[] }> };
  t.equal(v.bad.length, 1);
  t.same(v.bad[0]!.points.sort(), [`vm1@${p1.id}`, `vm1@${p2.id}`], 'names every point the block affects');
  t.match(v.bad[0]!.code, /SV_ERR_NATIVE_(DIGEST_MISMATCH|CORRUPT_PAYLOAD)|SV_ERR_STORE_CORRUPT_PACK/);
  const rs = await svIn(['restore', 'vm1', '--store', store, '--out', join(dir, 'x.raw')]);
  t.equal(rs.code, 1, 'restore refuses the bad block');
  const p3 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  t.equal(p3.blocksRepaired, 1, 'the next sync rewrites the known-bad block');
  t.equal((await svIn(['verify', '--store', store])).code, 0, 'verify is clean after the repair');
  const out = join(dir, 'r1.raw');
  t.equal((await svIn(['restore', `vm1@${p1.id}`, '--store', store, '--out', out])).code, 0);
  t.equal(sha256(out), sha256(disk), 'the old point restores again (same digest, good copy)');
  t.equal((await svInJson<{ blobsDeleted: number }>(['gc', '--store', store])).blobsDeleted, 1, 'gc drops the bad copy');
  t.equal((await svIn(['verify', '--store', store])).code, 0);
});

t.test('prune by count and days, gc reclaims, restore of kept points still works', async (t) => {
  const dir = tempDir(t);
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  generateDisk(disk, 16 * MiB, 5);
  const ids: string[] = [];
  for (let day = 0; day < 4; day++) {
    if (day) changeDay(disk, 16 * MiB, 60, 100 + day);
    ids.push((await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1'])).id);
  }
  const h = sha256(disk);
  const dry = await svInJson<{ removed: string[] }>(['prune', 'vm1', '--store', store, '--keep-count', '2', '--dry-run']);
  t.same(dry.removed, ids.slice(0, 2));
  t.equal((await svInJson<Point[]>(['points', '--store', store, 'vm1'])).length, 4, 'dry run removes nothing');
  const pr = await svInJson<{ removed: string[]; kept: string[] }>(['prune', 'vm1', '--store', store, '--keep-count', '2']);
  t.same(pr.kept, ids.slice(2));
  const before = du(join(store, 'packs'));
  const g = await svInJson<{ blobsDeleted: number; bytesFreed: number }>(['gc', '--store', store]);
  t.ok(g.blobsDeleted > 0 && g.bytesFreed > 0, 'gc frees the pruned points\' blocks');
  t.ok(du(join(store, 'packs')) < before);
  t.equal((await svIn(['verify', '--store', store])).code, 0);
  const out = join(dir, 'r.raw');
  t.equal((await svIn(['restore', 'vm1', '--store', store, '--out', out])).code, 0);
  t.equal(sha256(out), h);
  // days: everything older than 0.000001 days except the newest (always kept)
  const pd = await svInJson<{ removed: string[]; kept: string[] }>(['prune', 'vm1', '--store', store, '--keep-days', '0', '--keep-count', '1']);
  t.same(pd.kept, [ids[3]]);
  t.equal((await svInJson<{ pointsMarked: number }>(['gc', '--store', store])).pointsMarked, 1);
});

t.test('locks: same source refused with the holder named; different sources in parallel; gc during backup', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  const a = join(dir, 'a.raw');
  const b = join(dir, 'b.raw');
  generateDisk(a, 24 * MiB, 1);
  generateDisk(b, 24 * MiB, 2);
  svJson<Point>(['backup', a, '--store', store, '--source', 'vmA']);
  const lockPath = join(store, 'locks', 'source-vmA.lock');
  writeFileSync(lockPath, JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), operation: 'backup', since: 'now' }));
  const locked = sv(['backup', a, '--store', store, '--source', 'vmA']);
  t.equal(locked.code, 1);
  t.match(locked.stderr, new RegExp(`SV_ERR_STORE_LOCKED: data source "vmA" is locked by backup \\(pid ${process.pid}`));
  writeFileSync(lockPath, JSON.stringify({ pid: 999999, host: (await import('node:os')).hostname(), boot: 'x', operation: 'backup', since: 'then' }));
  t.equal(sv(['backup', a, '--store', store, '--source', 'vmA']).code, 0, 'a stale lock (dead holder) is taken over');
  changeDay(a, 24 * MiB, 5, 9);
  const ha = sha256(a);
  const hb = sha256(b);
  const [ra, rb, rg] = await Promise.all([
    svAsync(['backup', a, '--store', store, '--source', 'vmA', '--json']),
    svAsync(['backup', b, '--store', store, '--source', 'vmB', '--json']),
    svAsync(['gc', '--store', store, '--json']),
  ]);
  t.equal(ra.code, 0, ra.stderr);
  t.equal(rb.code, 0, rb.stderr);
  t.equal(rg.code, 0, rg.stderr);
  t.equal(svJson<{ bad: unknown[] }>(['verify', '--store', store]).bad.length, 0);
  for (const [src, h] of [['vmA', ha], ['vmB', hb]] as const) {
    const out = join(dir, `${src}.raw`);
    t.equal(sv(['restore', src, '--store', store, '--out', out]).code, 0);
    t.equal(sha256(out), h, `${src} restores after concurrent backups + gc`);
  }
  const two = await Promise.all([svAsync(['backup', a, '--store', store, '--source', 'vmA']), svAsync(['backup', a, '--store', store, '--source', 'vmA'])]);
  const codes = two.map((r) => r.code).sort();
  t.ok(codes[0] === 0, 'one of two same-source backups succeeds');
  if (codes[1] !== 0) t.match(two.find((r) => r.code !== 0)!.stderr, /SV_ERR_STORE_LOCKED/, 'the other gets the lock error');
});

function du(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}
