/**
 * Existing stores open unchanged (issue 13 §1): test/fixtures/store-v1 is a store written by the code before the
 * backend interface (main at 1051f47: two backups of an 8-block disk, then gc, so it holds gc-refs.bin and
 * gc.json too). Through the CLI, on a copy: the points list, both restore bit-identical, verify finds every
 * block good; then the store takes a new backup, prune and gc like any other, and still restores. The byte
 * layout is checked too: every file of the fixture is still where it was and unchanged after reads.
 */
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { REPO_ROOT, tempDir } from '../helpers/env.js';
import { sha256, svJson, type Point } from '../sync/helpers.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'store-v1');
const POINTS: Record<string, string> = {
  '20261202T152941351Z-a7ecb6': '5f68f4f640dfd50192f892aa990db09f8f9a85df4dc2819bb0dcc51082322d7e',
  '20261202T152947488Z-220d0a': '2731804769b7f877920902b7b44a51ae3c7994f6131005dea44ed3b10c98999e',
};

function filesOf(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesOf(dir, join(rel, e.name)) : [join(rel, e.name)])).sort();
}

t.test('a store written before the backend interface: list, restore, verify, then new points', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'store');
  cpSync(FIXTURE, store, { recursive: true });
  const before = new Map(filesOf(store).map((f) => [f, readFileSync(join(store, f))]));
  const points = svJson<Point[]>(['points', 'vm1', '--store', store]);
  t.same(points.map((p) => p.id), Object.keys(POINTS), 'both points listed, oldest first');
  for (const [id, hash] of Object.entries(POINTS)) {
    const out = join(dir, `${id}.raw`);
    svJson(['restore', `vm1@${id}`, '--out', out, '--store', store, '--format', 'raw']);
    t.equal(sha256(out), hash, `${id} restores bit-identical`);
  }
  const v = svJson<{ bad: unknown[]; blocksChecked: number; points: number }>(['verify', '--store', store]);
  t.same(v.bad, [], `verify: no bad blocks (${v.blocksChecked} checked)`);
  t.equal(v.points, 2, 'verify read both points');
  for (const [f, bytes] of before) t.ok(readFileSync(join(store, f)).equals(bytes), `${f} unchanged by reads`);

  const disk = join(dir, 'disk.raw');
  writeFileSync(disk, Buffer.alloc(8 * 65536, 7));
  const p3 = svJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  svJson(['prune', 'vm1', '--store', store, '--keep-count', '2']);
  svJson(['gc', '--store', store]);
  const after = svJson<Point[]>(['points', 'vm1', '--store', store]);
  t.same(after.map((p) => p.id), [Object.keys(POINTS)[1], p3.id], 'prune kept the newest two');
  const out = join(dir, 'p3.raw');
  svJson(['restore', `vm1@${p3.id}`, '--out', out, '--store', store, '--format', 'raw']);
  t.equal(sha256(out), sha256(disk), 'the new point restores');
  const old = join(dir, 'old.raw');
  svJson(['restore', `vm1@${Object.keys(POINTS)[1]!}`, '--out', old, '--store', store, '--format', 'raw']);
  t.equal(sha256(old), Object.values(POINTS)[1], 'the old point still restores after gc');
  t.ok(filesOf(store).every((f) => /^(packs\/[0-9a-f]{16}\.pack|index\/\d{20}-\d{6}\.idx|points\/vm1\/[^/]+\.json|sources\/vm1\.json|store\.json|gc\.json|gc-refs\.bin|locks\/.*|running\/.*)$/.test(f)),
    `the folder layout is the same (${filesOf(store).join(', ')})`);
});
