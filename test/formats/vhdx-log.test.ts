/**
 * VHDX log replay, built from the specification: an image written by our writer gets a log whose changes are not
 * in the file (a BAT page allocating a block past the end of the file, payload sectors, a zero range), spread
 * over three entries that wrap around the end of the circular log, plus a stale older entry and a torn entry
 * after the head; the header's LogGuid is set. Reads must see the replayed state, the file must not change, an
 * invalid head is ignored (the sequence ends before it), and a log with no valid sequence is a coded error.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { openDisk } from '../../src/formats/open.js';
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { buildHeader } from '../../src/formats/vhdx/build.js';
import { readGuid } from '../../src/formats/vhdx/guid.js';
import { GUIDS, HEADER_OFFSETS, REGION_TABLE_OFFSETS } from '../../src/formats/vhdx/layout.js';
import { parseHeader, parseRegionTable } from '../../src/formats/vhdx/structs.js';
import { tempDir } from '../helpers/env.js';
import { qemuImg, qemuIo } from './vhdx-helpers.js';
import { LOGGED_SIZE as SIZE, baseImage, install, plan } from './vhdx-logfixture.js';

const MiB = 1 << 20;

const sha = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

t.test('a pending log is replayed in memory; the file is unchanged', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  const p = await plan(path);
  await install(path, p);
  const before = await sha(path);
  const img = await openDisk(path);
  t.teardown(() => img.close());
  t.match(img.info.extra.log, { replayed: true, entries: 3, headSequence: '12' });
  t.same(img.info.extra.blockStates, { FULLY_PRESENT: 4, NOT_PRESENT: 4 }, 'the replayed BAT page allocates block 3');
  const all = await img.read(0, SIZE);
  t.ok(all.equals(p.expected), 'reads see the replayed data, zero range, and the block past the end of the file');
  const ext = await img.extents();
  t.same(ext.filter((e) => e.kind === 'data'), [{ offset: 0, length: 4 * MiB, kind: 'data' }]);
  await img.close();
  t.equal(await sha(path), before, 'the source file was not modified');
});

t.test('an invalid head entry is ignored: the sequence ends before it', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  const p = await plan(path, { tornHead: true });
  await install(path, p);
  const img = await openDisk(path);
  t.teardown(() => img.close());
  t.match(img.info.extra.log, { replayed: true, entries: 2, headSequence: '11' });
  t.ok((await img.read(0, SIZE)).equals(p.expected));
});

t.test('LogGuid set but no entry of that log: SV_ERR_VHDX_LOG', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  await install(path, await plan(path), '0badc0de-0000-4000-8000-000000000001');
  await t.rejects(openDisk(path), { code: 'SV_ERR_VHDX_LOG', message: /no valid sequence/ });
});

t.test('file shorter than the log head\'s FlushedFileOffset: SV_ERR_VHDX_LOG', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  await install(path, await plan(path, { flushed: 64 * MiB }));
  await t.rejects(openDisk(path), { code: 'SV_ERR_VHDX_LOG', message: /FlushedFileOffset/ });
});

t.test('a broken sequence (middle entry lost): the longest valid sequence that includes its tail is replayed', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  const p = await plan(path);
  p.entries[1] = { position: p.entries[1]!.position, bytes: Buffer.alloc(p.entries[1]!.bytes.length) }; // B erased
  await install(path, p);
  const img = await openDisk(path);
  t.teardown(() => img.close());
  // C (seq 12) no longer links back to its tail A, so it is no head; A alone (its own tail) is the active sequence.
  t.match(img.info.extra.log, { replayed: true, entries: 1, headSequence: '10' });
  t.same(img.info.extra.blockStates, { FULLY_PRESENT: 4, NOT_PRESENT: 4 }, 'A (the BAT page) replayed');
  const data = await img.read(0, SIZE);
  t.ok(data.subarray(64 * 1024, 72 * 1024).some((b) => b !== 0), 'B (zero range) not replayed');
  t.ok(data.subarray(3 * MiB, 4 * MiB).every((b) => b === 0), 'block 3 allocated past the end of the file reads zeros');
});

t.test('overlay: later log writes win, zero ranges split data, segments stay sorted and disjoint', async (t) => {
  const { OverlayBuilder } = await import('../../src/formats/vhdx/file-view.js');
  const o = new OverlayBuilder();
  const model = Buffer.alloc(64 * 1024, 0xee); // 0xee: "file bytes" not covered by the overlay
  const covered = new Uint8Array(model.length);
  const ops: [number, number, number | null][] = [
    [4096, 8192, 1], [0, 4096, 2], [6144, 4096, null], [8192, 16384, 3], [20000, 100, null], [1000, 30000, 4], [500, 600, null],
  ];
  for (const [start, len, fill] of ops) {
    o.apply(start, len, fill === null ? null : Buffer.alloc(len, fill));
    model.fill(fill ?? 0, start, start + len);
    covered.fill(1, start, start + len);
  }
  const segs = o.segments;
  for (let i = 1; i < segs.length; i++) t.ok(segs[i - 1]!.end <= segs[i]!.start, `segment ${i} after segment ${i - 1}`);
  const view = Buffer.alloc(model.length, 0xee);
  for (const s of segs) {
    t.ok(s.end > s.start && (!s.data || s.data.length === s.end - s.start), 'segment well formed');
    if (s.data) s.data.copy(view, s.start);
    else view.fill(0, s.start, s.end);
  }
  t.ok(view.equals(model), 'the overlay equals applying the writes in order');
});

t.test('a log entry written by qemu replays as qemu-img check -r all replays it', async (t) => {
  // qemu logs each BAT update, applies it and clears LogGuid. Setting LogGuid back and erasing the BAT page in
  // the file makes qemu's last entry necessary again: the BAT is only right after replay.
  const dir = tempDir(t);
  const path = join(dir, 'qemu-log.vhdx');
  qemuImg(['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', path, String(16 * MiB)]);
  qemuIo(path, ['write -P 0x61 0 1M', 'write -P 0x62 5M 64k']);
  const fh = await open(path, 'r+');
  try {
    const h1 = Buffer.alloc(4096);
    await fh.read(h1, 0, 4096, HEADER_OFFSETS[0]);
    const hdr = parseHeader(h1, { path, offset: HEADER_OFFSETS[0] });
    if (!hdr.ok) throw hdr.problem;
    // qemu starts a new log (new LogGuid, tail = itself) for each update: take its latest entry's LogGuid.
    const log = Buffer.alloc(hdr.value.logLength);
    await fh.read(log, 0, log.length, hdr.value.logOffset);
    let latest = -1;
    for (let o = 0; o < log.length; o += 4096) {
      if (log.toString('latin1', o, o + 4) === 'loge' && (latest < 0 || log.readBigUInt64LE(o + 16) > log.readBigUInt64LE(latest + 16))) latest = o;
    }
    t.ok(latest >= 0, 'qemu left log entries');
    const logGuid = readGuid(log, latest + 32);
    for (const off of HEADER_OFFSETS) {
      const b = Buffer.alloc(4096);
      await fh.read(b, 0, 4096, off);
      const h = parseHeader(b, { path, offset: off });
      if (!h.ok) throw h.problem;
      await fh.write(buildHeader({ ...h.value, logGuid }), 0, 4096, off);
    }
    const rt = Buffer.alloc(65536);
    await fh.read(rt, 0, 65536, REGION_TABLE_OFFSETS[0]);
    const regions = parseRegionTable(rt, { path, offset: REGION_TABLE_OFFSETS[0] });
    if (!regions.ok) throw regions.problem;
    const bat = regions.value.find((r) => r.guid === GUIDS.batRegion)!;
    await fh.write(Buffer.alloc(4096), 0, 4096, bat.fileOffset);
  } finally {
    await fh.close();
  }
  const repaired = join(dir, 'repaired.vhdx');
  await copyFile(path, repaired);
  qemuImg(['check', '-q', '-r', 'all', '-f', 'vhdx', repaired]);
  const raw = join(dir, 'repaired.raw');
  qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', repaired, raw]);
  const before = await sha(path);
  const img = await openDisk(path);
  t.teardown(() => img.close());
  t.match(img.info.extra.log, { replayed: true });
  const data = await img.read(0, 16 * MiB);
  t.ok(data.equals(await readFile(raw)), 'our in-memory replay reads what qemu reads after its repair');
  t.ok(data.subarray(5 * MiB, 5 * MiB + 65536).every((b) => b === 0x62), 'the block the log allocates is there');
  t.equal(await sha(path), before, 'the source file is unchanged');
});

t.test('a hostile log (every sector an entry header claiming the whole log) stops with SV_ERR_VHDX_LOG', async (t) => {
  const dir = tempDir(t);
  const path = await baseImage(dir);
  const p = await plan(path);
  const template = p.entries[0]!.bytes.subarray(0, 64);
  const log = Buffer.alloc(MiB);
  for (let o = 0; o < MiB; o += 4096) {
    template.copy(log, o);
    log.writeUInt32LE(MiB, o + 8); // entryLength: the whole log
  }
  const fh = await open(path, 'r+');
  await fh.write(log, 0, MiB, MiB);
  await fh.close();
  await install(path, { entries: [], expected: p.expected });
  await t.rejects(openDisk(path), { code: 'SV_ERR_VHDX_LOG', message: /scan stopped/ });
});
