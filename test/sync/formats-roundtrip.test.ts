/**
 * End to end: disk images made by Hyper-V, Windows, Disk2vhd, Virtual PC and qemu survive backup and restore
 * bit for bit, through the real CLI (bin/shadowvault.js in child processes) and a real store.
 *
 * 1. Every readable fixture of ../shared/fixtures/images (as the disks of one data source) → backup → restore to
 *    raw, vhd and vhdx; each output hashes (through our reader) to the README's content SHA-256, has the README's
 *    virtual size for qemu too, and `qemu-img compare`s equal to the source (explicit -f/-F: qemu probes a fixed
 *    VHD as raw, and sizes VHDs by creator); `qemu-img check` is clean on the VHDX outputs.
 *    The two 127 GiB empty VHDs are kept: they are sparse, so backup and restore take about a second. The README
 *    says "all zero" for them, so (a) is "every data extent, and 64 KiB every GiB, read zero at the README's
 *    size". Their VHDX outputs are not `qemu-img compare`d in full: qemu's VHDX driver has no block status, so
 *    that reads 127 GiB of zeros (measured ~20 s of CPU each, a third of this file's budget); instead the file
 *    holds no payload block, `qemu-img check` is clean and qemu reads zeros every GiB. The VHDX writer's sparse
 *    blocks are compared in full against qemu on iotest-dynamic-1G (29 of 32 blocks zero).
 * 2. A VM with two disks (a Hyper-V VHDX and a Windows VHD) as one data source: days of guest writes by qemu-io,
 *    backups with and without --changed; every point restores to that day's content; unchanged blocks shared.
 * 3. A Hyper-V checkpoint chain (base VHDX + two .avhdx, and a VHD + .avhd) built with `disk convert --variant
 *    differencing`: backups through the newest child restore to the merged view.
 * 4. Bad input (bad-* fixtures, truncated VHDX/VHD, a checkpoint without its base): backup fails with the
 *    catalogued code, the store's earlier points stay intact (same points, same files, restore still exact,
 *    verify clean).
 * CLI children run without tap's processinfo hook and with one worker thread (see formats-helpers.ts cliEnv).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { CATALOGUE } from '../../src/errors/catalogue.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { fixture } from '../formats/vhd-fixture-helpers.js';
import {
  GiB, MiB, backup, cli, cliAsync, cliJson, contentSha256, errorCode, fileSha256, firstNonZero, guestWrites, pool, qemuFormat, qemuImg, qemuVirtualSize,
  readmeFixtures, restore, touchedBlocks, treeBytes, treeFiles, type GuestWrite, type PointJson,
} from './formats-helpers.js';

const OUT_FORMATS = ['raw', 'vhd', 'vhdx'] as const;


t.test('every readable fixture: backup, restore to raw/vhd/vhdx, same content as the README and qemu-img', async (t) => {
  const dir = tempDir(t, 'sv-rt-');
  const store = join(dir, 'store');
  const rows = readmeFixtures();
  const good = rows.filter((r) => !r.bad);
  t.ok(good.length >= 10, `README lists the fixtures (${good.length} readable)`);
  t.ok(rows.some((r) => r.bad), 'and the bad ones (section 4)');
  const srcs = good.map((row) => {
    t.ok(row.virtualSize !== null && row.sha256 !== null, `${row.name}: README gives a size and a content hash`);
    const src = fixture(dir, row.file);
    t.equal(qemuVirtualSize(row.format, src), row.virtualSize, `${row.name}: qemu-img agrees with the README on the source size (creator rules)`);
    return src;
  });
  // All fixtures as the disks of one data source: one backup, disk i = fixture i.
  const p = backup(t, store, 'fixtures', srcs);
  t.equal(p.kind, 'initial', 'an initial point');
  t.same(p.disks.map((d) => [d.index, d.format, d.virtualSize]), good.map((r, i) => [i, r.format, r.virtualSize]), 'the point records each disk\'s format and README size');
  const outs = good.flatMap((row, i) => OUT_FORMATS.map((fmt) => ({ row, i, fmt, src: srcs[i]!, out: join(dir, `disk${i}.out.${fmt}`) })));
  const runs = pool(outs.map((o) => () => cliAsync(['restore', 'fixtures', '--store', store, '--disk', String(o.i), '--out', o.out, '--format', o.fmt])), 3);
  for (const [k, o] of outs.entries()) {
    const { row, fmt, src, out } = o;
    const size = row.virtualSize!;
    const what = `${row.name} → ${fmt}`;
    const run = await runs[k]!;
    t.equal(run.code, 0, `${what}: restore exits 0 ${run.stderr}`);
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
    if (fmt !== 'vhdx' || size <= 4 * GiB) {
      const compareArgs = ['compare', '-f', qemuFormat(row.format), '-F', qemuFormat(fmt), src, out];
      const c = qemuImg(compareArgs);
      t.equal(c.code, 0, `${what}: qemu-img ${compareArgs.join(' ')}: ${c.stdout.trim()} ${c.stderr.trim()}`);
      t.match(c.stdout, /Images are identical/u, `${what}: identical`);
      t.notMatch(c.stderr, /size mismatch/iu, `${what}: no size mismatch`);
      continue;
    }
    // A 127 GiB VHDX (see the top comment): no payload block in the file (smaller than one block), qemu-img
    // check clean (above), and qemu reads zeros at every GiB and at the very end.
    const cluster = (JSON.parse(qemuImg(['info', '-f', 'vhdx', '--output=json', out]).stdout) as { 'cluster-size': number })['cluster-size'];
    t.ok(statSync(out).size < cluster, `${what}: the VHDX holds no payload block (${statSync(out).size} bytes, blocks of ${cluster})`);
    const probes: string[] = [];
    for (let o = 0; o < size; o += GiB) probes.push('-c', `read -q -P 0 ${o} 65536`);
    probes.push('-c', `read -q -P 0 ${size - 65536} 65536`);
    const r = spawnSync(requireTool('qemu-io'), ['-f', 'vhdx', '-r', ...probes, out], { encoding: 'utf8' });
    t.equal(r.status, 0, `${what}: qemu-io runs ${probes.length / 2} probe reads`);
    t.equal(`${r.stdout}${r.stderr}`.trim(), '', `${what}: qemu reads zeros at every probe (no "Pattern verification failed")`);
  }
});

t.test('a VM with a VHDX and a VHD: days of guest writes, incremental backups, every point restores exactly', async (t) => {
  const dir = tempDir(t, 'sv-rt-vm-');
  const store = join(dir, 'store');
  const disks = [
    { path: join(dir, 'vm-os.vhdx'), format: 'vhdx', from: 'win10-dynamic.vhdx.gz' },
    { path: join(dir, 'vm-data.vhd'), format: 'vhd', from: 'win10-dynamic.vhd.gz' },
  ];
  for (const d of disks) copyFileSync(fixture(dir, d.from), d.path);
  const size = 10 * MiB;
  const total = size * disks.length;
  // Day 0: incompressible data in both (so that a point that did not share unchanged blocks would show).
  // Then days of scattered guest writes: unaligned, across 64 KiB boundaries, into unallocated VHD blocks,
  // zeroes over data, the last sector. null = the day's backup compares every block (no --changed).
  const days: Array<{ writes: [GuestWrite[], GuestWrite[]]; changed: boolean }> = [
    { changed: false, writes: [[{ offset: 1 * MiB, length: 3 * MiB, fill: 'random' }], [{ offset: 512 * 1024, length: 3 * MiB, fill: 'random' }]] },
    {
      changed: true,
      writes: [
        [
          { offset: 64 * 1024 + 512, length: 4096, fill: 0x11 }, { offset: 3 * MiB - 2048, length: 8192, fill: 'random' },
          { offset: 12345, length: 1000, fill: 0x22 }, { offset: size - 4096, length: 4096, fill: 0x33 }, { offset: 2 * MiB, length: 65536, fill: 'zero' },
        ],
        [
          { offset: 4 * MiB + 512, length: 4096, fill: 'random' }, { offset: 7 * MiB + 100, length: 3000, fill: 0x44 },
          { offset: 1 * MiB, length: 131072, fill: 'zero' }, { offset: size - 512, length: 512, fill: 0x55 },
        ],
      ],
    },
    {
      changed: false,
      writes: [
        [{ offset: 5 * MiB + 4096, length: 200_000, fill: 'random' }, { offset: 9 * MiB, length: 512, fill: 0x66 }],
        [{ offset: 0, length: 512, fill: 0x77 }, { offset: 2 * MiB - 1024, length: 2048, fill: 0x88 }],
      ],
    },
    { changed: true, writes: [[], [{ offset: 6 * MiB + 7 * 512, length: 70_000, fill: 'random' }]] },
    { changed: true, writes: [[], []] },
  ];
  const history: Array<{ point: PointJson; sums: string[]; copies: string[] }> = [];
  let before = 0;
  for (const [day, plan] of days.entries()) {
    const changes = disks.map((d, i) => guestWrites(d.format, d.path, plan.writes[i]!, dir, 1000 * day + 17 * i + 1));
    const sums: string[] = [];
    const copies: string[] = [];
    for (const [i, d] of disks.entries()) {
      sums.push((await contentSha256(d.path)).sha256);
      const copy = join(dir, `day${day}-disk${i}.${d.format}`);
      copyFileSync(d.path, copy);
      copies.push(copy);
    }
    let changed: string[] | undefined;
    if (plan.changed) {
      changed = changes.map((c, i) => {
        const file = join(dir, `day${day}-disk${i}.changed.json`);
        writeFileSync(file, JSON.stringify(c));
        return file;
      });
    }
    const point = backup(t, store, 'vm', disks.map((d) => d.path), changed);
    const after = treeBytes(store);
    const touched = changes.reduce((n, c) => n + touchedBlocks(c, point.blockSize), 0);
    if (day === 0) t.equal(point.kind, 'initial', 'day 0: the initial point');
    else {
      t.equal(point.kind, plan.changed ? 'incremental' : 'express-full', `day ${day}: ${plan.changed ? 'with' : 'without'} --changed`);
      if (plan.changed) t.ok(point.bytesRead <= touched * point.blockSize, `day ${day}: read only the changed blocks (${point.bytesRead} bytes, ${touched} blocks touched)`);
      else t.equal(point.bytesRead, total, `day ${day}: read every block`);
      t.ok(point.bytesChanged <= touched * point.blockSize, `day ${day}: ${point.bytesChanged} bytes changed, at most the ${touched} touched blocks`);
      t.equal(point.bytesChanged > 0, touched > 0, `day ${day}: changes seen exactly when there were writes`);
      // Unchanged blocks are shared with the earlier points: the store grows by about the changed blocks,
      // far less than the disks (6 MiB of incompressible data in them would come back with every unshared copy).
      t.ok(after - before <= touched * point.blockSize + 256 * 1024, `day ${day}: store grew ${after - before} bytes (${touched} blocks touched)`);
      t.ok(after - before < total / 16, `day ${day}: store growth ${after - before} is far below the disk size ${total}`);
    }
    before = after;
    history.push({ point, sums, copies });
  }
  t.ok(before < total, `whole store ${before} bytes for ${days.length} points of ${total} bytes of disks`);
  const points = cliJson<PointJson[]>(['points', '--store', store, 'vm']);
  t.same(points.map((p) => p.id), history.map((h) => h.point.id), 'every day is a point, oldest first');
  const jobs = history.flatMap((h, day) => disks.map((d, i) => ({ day, i, d, h, fmt: OUT_FORMATS[(day + i) % 3]!, out: join(dir, `r-day${day}-disk${i}`) })));
  const runs = pool(jobs.map((j) => () => cliAsync(['restore', `vm@${j.h.point.id}`, '--store', store, '--disk', String(j.i), '--out', `${j.out}.${j.fmt}`, '--format', j.fmt])), 3);
  for (const [k, j] of jobs.entries()) {
    const out = `${j.out}.${j.fmt}`;
    const what = `day ${j.day} disk ${j.i} (${j.d.format}) → ${j.fmt}`;
    const run = await runs[k]!;
    t.equal(run.code, 0, `${what}: restore exits 0 ${run.stderr}`);
    t.equal((await contentSha256(out)).sha256, j.h.sums[j.i], `${what}: that day's content`);
    const c = qemuImg(['compare', '-f', qemuFormat(j.d.format), '-F', qemuFormat(j.fmt), j.h.copies[j.i]!, out]);
    t.equal(c.code, 0, `${what}: qemu-img compare with that day's image: ${c.stdout.trim()} ${c.stderr.trim()}`);
  }
});

interface DiskInfoJson {
  format: string;
  variant: string;
  extra: { blockStates?: Record<string, number> };
  chain?: Array<{ path: string; format: string; variant: string }>;
}

t.test('Hyper-V checkpoints: base VHDX + .avhdx chain (and VHD + .avhd) backed up through the newest child restore the merged view', async (t) => {
  const dir = tempDir(t, 'sv-rt-ckpt-');
  const store = join(dir, 'store');
  const base = join(dir, 'Win10.vhdx');
  copyFileSync(fixture(dir, 'win10-dynamic.vhdx.gz'), base);
  // The guest's view after each checkpoint, kept as raw files made by qemu (the expected merged views).
  const view = (n: number) => join(dir, `view${n}.raw`);
  t.equal(qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', base, view(0)]).code, 0, 'qemu-img convert: the expected view');
  const writes1: GuestWrite[] = [
    { offset: 0, length: 65536, fill: 'zero' }, // zeroes over the parent's MBR: the child must hide the parent's bytes
    { offset: 2 * MiB, length: 2 * MiB, fill: 'zero' }, // a whole 2 MiB child block zeroed over parent data
    { offset: 5 * MiB + 1536, length: 5000, fill: 'random' }, { offset: 8 * MiB - 512, length: 1024, fill: 0x3c },
  ];
  const writes2: GuestWrite[] = [{ offset: 512, length: 512, fill: 0x5a }, { offset: 9 * MiB, length: 300_000, fill: 'random' }, { offset: 5 * MiB + 2048, length: 512, fill: 'zero' }];
  copyFileSync(view(0), view(1));
  guestWrites('raw', view(1), writes1, dir, 501);
  copyFileSync(view(1), view(2));
  const changes2 = guestWrites('raw', view(2), writes2, dir, 502);
  // Checkpoint 1: Win10_<guid>.avhdx over the base; checkpoint 2 over checkpoint 1 (Hyper-V's naming).
  const child1 = join(dir, 'Win10_6A1F2C3D-0000-4000-8000-000000000001.avhdx');
  const child2 = join(dir, 'Win10_6A1F2C3D-0000-4000-8000-000000000002.avhdx');
  for (const [v, child, parent] of [[view(1), child1, base], [view(2), child2, child1]] as const) {
    const r = cli(['disk', 'convert', v, child, '--variant', 'differencing', '--parent', parent]);
    t.equal(r.code, 0, `disk convert → ${child}: ${r.stderr}`);
  }
  const info = cliJson<DiskInfoJson>(['disk', 'info', child2]);
  t.match(info, { format: 'vhdx', variant: 'differencing' }, 'the newest checkpoint is a differencing VHDX');
  t.same(info.chain?.map((c) => c.variant), ['differencing', 'dynamic'], 'over checkpoint 1, over the dynamic base');
  t.ok((info.extra.blockStates?.NOT_PRESENT ?? 0) > 0, `the child holds only what differs (${JSON.stringify(info.extra.blockStates)})`);
  const sums = [0, 1, 2].map((n) => fileSha256(view(n)));
  t.equal((await contentSha256(child1)).sha256, sums[1], 'our reader: checkpoint 1 merged view');
  t.equal((await contentSha256(child2)).sha256, sums[2], 'our reader: checkpoint 2 merged view');
  // Backups through the running checkpoint: after checkpoint 1, then after checkpoint 2 with its change list.
  const p1 = backup(t, store, 'win10', [child1]);
  writeFileSync(join(dir, 'changes2.json'), JSON.stringify(changes2));
  const p2 = backup(t, store, 'win10', [child2], [join(dir, 'changes2.json')]);
  t.equal(p2.kind, 'incremental', 'checkpoint 2 with its change list: incremental');
  t.ok(p2.bytesRead <= touchedBlocks(changes2, p2.blockSize) * p2.blockSize, `only the changed blocks read through the chain (${p2.bytesRead} bytes)`);
  const outs = [
    { id: p1.id, n: 1, fmt: 'vhdx' },
    ...OUT_FORMATS.map((fmt) => ({ id: p2.id, n: 2, fmt })),
  ].map((o) => ({ ...o, out: join(dir, `r${o.n}.${o.fmt}`) }));
  const runs = pool(outs.map((o) => () => cliAsync(['restore', `win10@${o.id}`, '--store', store, '--out', o.out, '--format', o.fmt])), 3);
  for (const [k, o] of outs.entries()) {
    const run = await runs[k]!;
    t.equal(run.code, 0, `checkpoint ${o.n} → ${o.fmt}: restore exits 0 ${run.stderr}`);
    t.equal((await contentSha256(o.out)).sha256, sums[o.n], `checkpoint ${o.n} → ${o.fmt}: the merged view`);
    const c = qemuImg(['compare', '-f', 'raw', '-F', qemuFormat(o.fmt), view(o.n), o.out]);
    t.equal(c.code, 0, `checkpoint ${o.n} → ${o.fmt}: qemu-img compare with the expected view: ${c.stdout.trim()} ${c.stderr.trim()}`);
  }

  // The same with a VHD and an .avhd (Hyper-V 2008 / Virtual PC style).
  const vbase = join(dir, 'Old.vhd');
  copyFileSync(fixture(dir, 'win10-dynamic.vhd.gz'), vbase);
  t.equal(qemuImg(['convert', '-f', 'vpc', '-O', 'raw', vbase, view(3)]).code, 0, 'qemu-img convert: the expected view');
  guestWrites('raw', view(3), [{ offset: 0, length: 4096, fill: 'zero' }, { offset: 6 * MiB + 512, length: 3000, fill: 'random' }], dir, 503);
  const avhd = join(dir, 'Old_1.avhd');
  t.equal(cli(['disk', 'convert', view(3), avhd, '--variant', 'differencing', '--parent', vbase]).code, 0, 'disk convert → .avhd');
  const pv = backup(t, store, 'old', [avhd]);
  t.same(pv.disks.map((d) => d.format), ['vhd'], 'the .avhd is backed up as a VHD');
  const out = join(dir, 'old.raw');
  restore(t, store, 'old', 0, out, 'raw');
  t.equal(fileSha256(out), fileSha256(view(3)), '.avhd checkpoint: the merged view');
});

t.test('bad input through the CLI: refused with the catalogued code, earlier points untouched', async (t) => {
  const dir = tempDir(t, 'sv-rt-bad-');
  const store = join(dir, 'store');
  const good = join(dir, 'vm.vhd');
  copyFileSync(fixture(dir, 'win10-fixed.vhd.gz'), good);
  const p1 = backup(t, store, 'vm', [good]);
  guestWrites('vhd', good, [{ offset: 3 * MiB, length: 70_000, fill: 'random' }], dir, 601);
  const p2 = backup(t, store, 'vm', [good]);
  const goodSum = (await contentSha256(good)).sha256;
  const pointsBefore = cliJson<PointJson[]>(['points', '--store', store]);
  t.same(pointsBefore.map((p) => p.id), [p1.id, p2.id], 'two good points before the bad input');
  const filesBefore = treeFiles(store);

  const vhdx = fixture(dir, 'win10-dynamic.vhdx.gz');
  const cut = (from: string, name: string, bytes: number): string => {
    const out = join(dir, name);
    copyFileSync(from, out);
    truncateSync(out, bytes);
    return out;
  };
  // An .avhdx whose parent was moved away (a checkpoint copied without its base).
  const lostBase = join(dir, 'lost', 'Base.vhdx');
  const orphan = join(dir, 'Base_1.avhdx');
  const orphanView = join(dir, 'orphan-view.raw');
  t.equal(qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', vhdx, orphanView]).code, 0, 'qemu-img convert: the expected view');
  guestWrites('raw', orphanView, [{ offset: 4096, length: 4096, fill: 0x42 }], dir, 602);
  copyFileSync(vhdx, join(dir, 'Base.vhdx'));
  t.equal(cli(['disk', 'convert', orphanView, orphan, '--variant', 'differencing', '--parent', join(dir, 'Base.vhdx')]).code, 0, 'disk convert → .avhdx');
  mkdirSync(dirname(lostBase));
  renameSync(join(dir, 'Base.vhdx'), lostBase);
  const vhdSize = statSync(fixture(dir, 'win10-dynamic.vhd.gz')).size;
  const cases: Array<{ what: string; images: string[]; code: string }> = [
    { what: 'bad-footer-checksum.vhd', images: [fixture(dir, 'bad-footer-checksum.vhd.gz')], code: 'SV_ERR_VHD_FOOTER_CHECKSUM' },
    { what: 'bad-checksums-differencing.vhd', images: [fixture(dir, 'bad-checksums-differencing.vhd.gz')], code: 'SV_ERR_VHD_FOOTER_CHECKSUM' },
    { what: 'VHDX cut in its header section', images: [cut(vhdx, 'cut-header.vhdx', 200_000)], code: 'SV_ERR_FORMAT_TRUNCATED' },
    { what: 'VHDX cut in its BAT region', images: [cut(vhdx, 'cut-bat.vhdx', 3_200_000)], code: 'SV_ERR_FORMAT_TRUNCATED' },
    { what: 'VHDX cut in its payload', images: [cut(vhdx, 'cut-payload.vhdx', 9_000_000)], code: 'SV_ERR_VHDX_BAT' },
    { what: 'dynamic VHD cut in half', images: [cut(join(dir, 'win10-dynamic.vhd'), 'cut-half.vhd', Math.floor(vhdSize / 2))], code: 'SV_ERR_VHD_BAD_BAT' },
    { what: 'dynamic VHD cut after its footer copy', images: [cut(join(dir, 'win10-dynamic.vhd'), 'cut-start.vhd', 1000)], code: 'SV_ERR_VHD_BAD_FOOTER' },
    { what: 'a good disk and a cut VHDX', images: [good, join(dir, 'cut-payload.vhdx')], code: 'SV_ERR_VHDX_BAT' },
    { what: '.avhdx whose parent is gone', images: [orphan], code: 'SV_ERR_FORMAT_PARENT_NOT_FOUND' },
  ];
  for (const [k, c] of cases.entries()) {
    // Into the source with points; the first and the two-disk case also as the first backup of a new source.
    for (const source of k === 0 || c.images.length > 1 ? ['vm', 'new-vm'] : ['vm']) {
      const r = cli(['backup', ...c.images, '--store', store, '--source', source]);
      t.equal(r.code, 1, `${c.what} (into ${source}): backup exits 1`);
      const code = errorCode(r.stderr);
      t.equal(code, c.code, `${c.what} (into ${source}): ${r.stderr.trim()}`);
      t.ok(code !== undefined && Object.hasOwn(CATALOGUE, code), `${c.what}: ${code} is in the error catalogue`);
      t.ok(r.stderr.includes(c.images[c.images.length - 1]!.split('/').pop()!.replace('.avhdx', '')), `${c.what}: the message names the file`);
    }
  }
  t.same(cliJson<PointJson[]>(['points', '--store', store]), pointsBefore, 'the same points, nothing added');
  // Known failing (reported to the lead, storage/ + src/sync/ are not ours to edit): a failed first backup of a
  // new data source leaves sources/new-vm.json behind (ensureSource runs before the images are opened), so the
  // source is listed and the failed run's --block-size sticks to it.
  t.same(treeFiles(store).filter((f) => !filesBefore.includes(f)), [], 'no file left behind by the failed runs (no source registered by a failed first backup)');
  t.same(filesBefore.filter((f) => !treeFiles(store).includes(f)), [], 'no file removed');
  const out = join(dir, 'after.vhd');
  restore(t, store, 'vm', 0, out, 'vhd');
  t.equal((await contentSha256(out)).sha256, goodSum, 'the latest point still restores exactly');
  const v = cliJson<{ bad: unknown[] }>(['verify', '--store', store]);
  t.same(v.bad, [], 'verify finds every stored block intact');

  // Recoverable damage: a dynamic VHD whose end footer was cut off (an interrupted copy) is read through its
  // footer copy at offset 0 (with a warning in disk info) and backs up to the README's content.
  const noFooter = cut(join(dir, 'win10-dynamic.vhd'), 'no-end-footer.vhd', vhdSize - 512);
  backup(t, store, 'no-footer', [noFooter]);
  const restored = join(dir, 'no-footer.raw');
  restore(t, store, 'no-footer', 0, restored, 'raw');
  const want = readmeFixtures().find((r) => r.name === 'win10-dynamic.vhd')?.sha256;
  t.equal(fileSha256(restored), want, 'a VHD without its end footer restores to the README content');
});
