/**
 * Crash safety for real: kill -9 of backup, prune and gc child processes at random moments (12 kills, 48
 * with SHADOWVAULT_SOAK=1). After each kill the store opens without repair, every point that exists restores
 * bit-identical, and the same operation then completes. Then a disk-full backup on a small tmpfs:
 * SV_ERR_CORE_NO_SPACE, committed points intact, space back after gc.
 *
 * Only the runs that are killed (and the disk-full backup, for its exit code and stderr) are child processes;
 * the checks between them run the same CLI main() in this process (test/helpers/cli.ts), which saves a
 * process start per check.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { changeDay, generateDisk, prng } from '../../bench/gen-disk.js';
import { cliInProcess as svIn, cliJsonInProcess as svInJson } from '../helpers/cli.js';
import { childEnv, CLI, tempDir } from '../helpers/env.js';
import { rounds } from '../helpers/soak.js';
import { sha256, sv, type Point } from '../sync/helpers.js';

const MiB = 1 << 20;

function killAfter(args: string[], delayMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore', env: childEnv({ SHADOWVAULT_WORKERS: '2' }) });
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

t.test('kill -9 of backup, prune, gc at random moments', async (t) => {
  const dir = tempDir(t);
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  const size = 16 * MiB;
  generateDisk(disk, size, 21);
  const hashes = new Map<string, string>();
  const p0 = await svInJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  hashes.set(p0.id, sha256(disk));
  const rand = prng(99);
  const ops = ['backup', 'backup', 'prune', 'gc'] as const;
  let killed = 0;
  for (let round = 0, n = rounds(12, 48); round < n; round++) {
    const op = ops[Math.floor(rand() * ops.length)]!;
    let args: string[];
    if (op === 'backup') {
      changeDay(disk, size, 5 + Math.floor(rand() * 20), 1000 + round);
      args = ['backup', disk, '--store', store, '--source', 'vm1'];
    } else if (op === 'prune') args = ['prune', 'vm1', '--store', store, '--keep-count', String(2 + Math.floor(rand() * 3))];
    else args = ['gc', '--store', store];
    const delay = 50 + Math.floor(rand() * 600);
    const code = await killAfter(args, delay);
    if (code === null) killed++;
    // The store opens without repair and every existing point restores bit-identical.
    const points = await svInJson<Point[]>(['points', '--store', store, 'vm1']);
    t.ok(points.length >= 1, `round ${round} (${op} killed after ${delay} ms): ${points.length} points`);
    const check = [...new Set([points[points.length - 1]!, points[Math.floor(rand() * points.length)]!])];
    for (const p of check) {
      const out = join(dir, `r${round}-${p.id}.raw`);
      if (!hashes.has(p.id)) hashes.set(p.id, sha256(disk)); // committed by the killed run (after its last write)
      const r = await svIn(['restore', `vm1@${p.id}`, '--store', store, '--out', out]);
      t.equal(r.code, 0, r.stderr);
      t.equal(sha256(out), hashes.get(p.id), `round ${round}: ${p.id} restores bit-identical`);
    }
    // The same operation then completes.
    const again = await svIn(args);
    t.equal(again.code, 0, `round ${round}: ${op} completes after the kill: ${again.stderr}`);
    if (op === 'backup') {
      const latest = (await svInJson<Point[]>(['points', '--store', store, 'vm1'])).pop()!;
      hashes.set(latest.id, sha256(disk));
    }
  }
  t.ok(killed >= 5, `${killed} runs were killed mid-way`);
  const g = await svInJson<{ mark: string; fullReason: string | null }>(['gc', '--store', store]);
  t.equal(g.mark, 'incremental', `the gc after the kills updates the reference table (${g.fullReason ?? 'loaded'})`);
  const full = await svInJson<{ mark: string; blobsDeleted: number }>(['gc', '--store', store, '--full']);
  t.equal(full.blobsDeleted, 0, 'a full mark then finds nothing the incremental one missed (no count was left too high)');
  const v = await svIn(['verify', '--store', store]);
  t.equal(v.code, 0, v.stdout + v.stderr);
  for (const p of await svInJson<Point[]>(['points', '--store', store, 'vm1'])) {
    const out = join(dir, `final-${p.id}.raw`);
    t.equal((await svIn(['restore', `vm1@${p.id}`, '--store', store, '--out', out])).code, 0);
    t.equal(sha256(out), hashes.get(p.id), `final: ${p.id} bit-identical`);
  }
});

t.test('disk full during a backup (tmpfs of 12 MiB)', async (t) => {
  const dir = tempDir(t);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.fail(`this test mounts a 12 MiB tmpfs and needs root (mount said: ${m.stderr.trim()}); run the suite as root`);
    return;
  }
  t.teardown(() => { spawnSync('umount', ['-l', mnt]); });
  const store = join(mnt, 'store');
  const small = join(dir, 'small.raw');
  const big = join(dir, 'big.raw');
  generateDisk(small, 8 * MiB, 31);
  const p = await svInJson<Point>(['backup', small, '--store', store, '--source', 'small']);
  const h = sha256(small);
  generateDisk(big, 40 * MiB, 32);
  const used = (): number => readdirSync(join(store, 'packs')).reduce((n, f) => n + statSync(join(store, 'packs', f)).size, 0);
  const before = used();
  const r = sv(['backup', big, '--store', store, '--source', 'big']); // a real process: exit code and stderr
  t.equal(r.code, 1);
  t.match(r.stderr, /^error SV_ERR_CORE_NO_SPACE: .*no space left on device/m, 'a clear coded error');
  t.same((await svInJson<Point[]>(['points', '--store', store])).map((x) => x.id), [p.id], 'nothing new committed');
  const out = join(dir, 'r.raw');
  t.equal((await svIn(['restore', 'small', '--store', store, '--out', out])).code, 0);
  t.equal(sha256(out), h, 'the committed point is intact');
  const g = await svIn(['gc', '--store', store]);
  t.equal(g.code, 0, g.stderr);
  t.equal(used(), before, 'the failed backup\'s space is reclaimed');
  writeFileSync(join(dir, 'done'), '');
  t.equal((await svIn(['verify', '--store', store])).code, 0);
});
