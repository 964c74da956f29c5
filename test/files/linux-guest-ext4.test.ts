/**
 * Item-level restore of ext4 written by a real Linux kernel (issue 12 proof): the Linux test guest boots under
 * QEMU on a fresh ext4 disk and writes SHA-256-trailed files (scripts/guest/init.sh); its file system is frozen
 * through qemu-ga (ext4's freeze checkpoints the journal into place and clears needs_recovery), QEMU quits, the
 * disk is backed up by the real engine, and the point is browsed with the `files` CLI in child processes.
 * Checked against the tools: the listing of /files equals `debugfs -R 'ls -l /files'` (inode, mode, size,
 * modification minute, name), every file `files get` writes equals what `debugfs rdump` extracts byte for byte,
 * and every fNNNNNN file's payload matches its SVSUM trailer. One boot.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { GuestAgentClient } from '../../src/qemu/guest-agent.js';
import { closePool } from '../../src/pool/index.js';
import { backup } from '../../src/sync/index.js';
import { requireTool, run, tempDir } from '../helpers/env.js';
import { fsck, startLinuxGuest, svsumProblem } from '../helpers/linux-guest.js';
import { svJson } from '../sync/helpers.js';
import { fileRefs } from '../../src/sources/file.js';

t.teardown(closePool);

interface LsOut { entries: Array<{ name: string; type: string; size: number; modified: string | null; id: number; mode?: number }> }
interface DebugfsEntry { inode: number; mode: number; size: number; minute: string; name: string }

/** `debugfs -R 'ls -l DIR'` (TZ=UTC), '.' and '..' left out. */
function debugfsLs(image: string, dir: string): DebugfsEntry[] {
  const out = execFileSync(requireTool('debugfs'), ['-R', `ls -l ${dir}`, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
  const entries: DebugfsEntry[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+([0-7]+)\s+\(\d+\)\s+\d+\s+\d+\s+(\d+)\s+(\S+ \d\d:\d\d) (.+)$/u.exec(line);
    if (!m || m[5] === '.' || m[5] === '..') continue;
    entries.push({ inode: Number(m[1]), mode: parseInt(m[2]!, 8), size: Number(m[3]), minute: m[4]!, name: m[5]! });
  }
  return entries;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** An ISO time as debugfs's `ls -l` prints it in UTC: "2-Dec-2026 12:26". */
function debugfsMinute(iso: string): string {
  const d = new Date(iso);
  const hh = String(d.getUTCHours()).padStart(2, '0');
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  return `${d.getUTCDate()}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${hh}:${mm}`;
}

/** Every regular file under `dir`, relative path → bytes. */
function files(dir: string, rel = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(join(dir, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = statSync(join(dir, r));
    if (st.isDirectory()) for (const [k, v] of files(dir, r)) out.set(k, v);
    else if (st.isFile()) out.set(r, readFileSync(join(dir, r)));
  }
  return out;
}

t.test('ext4 written by the Linux kernel, backed up, browsed and fetched with `files`', async (t) => {
  const dir = tempDir(t, 'sv-guest-ext4-');
  const guest = await startLinuxGuest(t, dir);
  const ga = await GuestAgentClient.connect(guest.guestAgentSocket);
  t.teardown(() => ga.close());
  t.equal(await ga.fsfreezeFreeze({ timeoutMs: 60_000 }), 1, 'the guest froze /data (journal checkpointed in place)');
  await guest.vm.shutdown();
  const clean = fsck(guest.disk);
  t.equal(clean.status, 0, `the guest's disk is clean without journal replay: ${clean.output}`);

  const store = join(dir, 'store');
  const point = await backup({ store, source: 'linux', disks: fileRefs([guest.disk]) });
  const ref = `linux@${point.id}`;

  const want = debugfsLs(guest.disk, '/files');
  const written = want.filter((e) => /^f\d{6}$/u.test(e.name));
  t.ok(written.length >= 8, `the guest wrote ${written.length} files still on disk (>= 8)`);

  const ls = svJson<LsOut>(['files', 'ls', ref, '/files', '--store', store]);
  const got = ls.entries.map((e) => ({ inode: e.id, mode: e.mode, size: e.size, minute: e.modified ? debugfsMinute(e.modified) : '', name: e.name }));
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  t.same(got.sort(byName), want.sort(byName), '`files ls /files` = `debugfs ls -l /files` (inode, mode, size, minute, name)');
  const root = svJson<LsOut>(['files', 'ls', ref, '/', '--store', store]);
  t.same(root.entries.map((e) => e.name).sort(), debugfsLs(guest.disk, '/').map((e) => e.name).sort(), 'root listing as debugfs');

  const out = join(dir, 'got');
  svJson(['files', 'get', ref, '/files', '--out', out, '--store', store]);
  const rdump = join(dir, 'rdump');
  mkdirSync(rdump);
  run(requireTool('debugfs'), ['-R', `rdump /files ${rdump}`, guest.disk]);
  const fetched = files(join(out, 'files'));
  const dumped = files(join(rdump, 'files'));
  t.same([...fetched.keys()].sort(), [...dumped.keys()].sort(), '`files get` wrote the files debugfs extracts');
  const differ = [...dumped].filter(([k, v]) => !fetched.get(k)?.equals(v)).map(([k]) => k);
  t.same(differ, [], `every fetched file equals debugfs rdump's bytes (${dumped.size} files)`);

  const bad: string[] = [];
  let checked = 0;
  for (const [name, data] of fetched) {
    if (!/^f\d{6}$/u.test(name)) continue;
    checked++;
    const problem = svsumProblem(data);
    if (problem) bad.push(`${name}: ${problem}`);
  }
  t.equal(checked, written.length, `every guest file checked (${checked})`);
  t.same(bad, [], 'every fetched guest file matches its SHA-256 trailer');
});
