/**
 * What each recovery point records (issue 10 §4): consistency, reasons, pauseMs / freezeMs, per disk
 * tracking and changeRef, bytesSent per disk and in total. Round trip through the manifest, summarize(),
 * listPoints, `backup --json` / `points --json` (the CLI as a process) and the API; old manifests (without the
 * fields) still read; malformed fields are refused; bytesSent is the source's bytesTransferred (an NBD export
 * from nbdkit: exactly the bytes read; a local file: 0).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SyncEngine } from '../../src/appliance/engine/sync.js';
import { hasCode } from '../../src/errors/index.js';
import { closePool } from '../../src/pool/index.js';
import { backup, fileRefs, listPoints, summarize, type BackupOptions } from '../../src/sync/index.js';
import { encodeManifest, parseManifest, type PointManifest } from '../../storage/manifest.js';
import { startTestAppliance } from '../api/helpers.js';
import { makeRawImage } from '../appliance/images.js';
import { childEnv, CLI, nodeCommand, tempDir } from '../helpers/env.js';
import { nbdkit } from '../nbd/peers.js';
import { asyncErrorCode } from '../helpers/codes.js';

t.teardown(closePool);
const MiB = 1 << 20;

function manifestFile(store: string, source: string, id: string): string {
  return join(store, 'points', source, `${id}.json`);
}


t.test('point fields: recorded, returned, listed, and read back unchanged', async (t) => {
  const dir = tempDir(t, 'sv-point-');
  const store = join(dir, 'store');
  const d0 = join(dir, 'd0.img');
  const d1 = join(dir, 'd1.img');
  makeRawImage(d0, 4, 2, 1);
  makeRawImage(d1, 2, 1, 2);
  const first = await backup({ store, source: 'vm', disks: fileRefs([d0, d1]) });
  t.same(first.disks.map((d) => d.tracking), [{ method: 'initial', reason: 'first recovery point of the source' }, { method: 'initial', reason: 'first recovery point of the source' }]);
  t.same(first.reasons, [], 'no reasons given: none recorded');
  t.equal(first.bytesSent, 0, 'local files: nothing crossed a boundary');
  t.same(first.disks.map((d) => d.stats?.bytesSent), [0, 0]);

  makeRawImage(d0, 4, 3, 7);
  const ref0 = { id: 'sv-bitmap-2', diskIdentity: 'node:vda:ino:42', virtualSize: 4 * MiB };
  const opts: BackupOptions = {
    store, source: 'vm', disks: fileRefs([d0, d1]), consistency: 'offline', reasons: ['guest agent not answering', 'online backup not allowed'], pauseMs: 123.5,
    changed: [[[0, 4 * MiB]], null], tracking: [null, { method: 'digest', reason: 'dirty bitmap missing', fallback: 'bitmap-missing' }], changeRefs: [ref0, null],
  };
  const second = await backup(opts);
  t.equal(second.consistency, 'offline');
  t.same(second.reasons, opts.reasons);
  t.equal(second.pauseMs, 123.5);
  t.equal(second.freezeMs, undefined);
  t.same(second.disks[0]!.tracking, { method: 'bitmap' }, 'a change list: bitmap');
  t.same(second.disks[1]!.tracking, { method: 'digest', reason: 'dirty bitmap missing', fallback: 'bitmap-missing' }, 'the caller\'s record, with its fallback code');
  t.same(second.disks[0]!.changeRef, ref0);
  t.equal(second.disks[1]!.changeRef, undefined);

  const text = readFileSync(manifestFile(store, 'vm', second.id), 'utf8');
  const m = parseManifest(text, 'm');
  t.same(parseManifest(encodeManifest(m), 'again'), m, 'a manifest written now reads back unchanged');
  const { blocksRepaired, ...summary } = second;
  t.equal(blocksRepaired, 0);
  t.same(summarize(m), summary, 'summarize(manifest) is what backup returned');
  const listed = (await listPoints({ store, source: 'vm' })).find((p) => p.id === second.id);
  t.same(listed, summary, 'listPoints returns the same fields');

  // the CLI as a process: backup --json and points --json
  const cli = (...args: string[]) => spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', env: childEnv() });
  const b = cli('backup', d0, d1, '--source', 'vm', '--store', store, '--consistency', 'application', '--json');
  t.equal(b.status, 0, b.stderr);
  const bj = JSON.parse(b.stdout) as Record<string, unknown> & { disks: { tracking: unknown; stats: { bytesSent: number } }[] };
  t.same(bj.reasons, []);
  t.equal(bj.bytesSent, 0);
  t.same(bj.disks.map((d) => d.tracking), [{ method: 'digest' }, { method: 'digest' }], 'no change list: digest');
  const p = cli('points', 'vm', '--store', store, '--json');
  t.equal(p.status, 0, p.stderr);
  const pj = JSON.parse(p.stdout) as Array<Record<string, unknown>>;
  t.same(pj.find((x) => x.id === second.id), JSON.parse(JSON.stringify(summary)), 'points --json has the fields');
});

t.test('old manifests (without the fields) still read; malformed fields are refused', async (t) => {
  const dir = tempDir(t, 'sv-point-old-');
  const store = join(dir, 'store');
  const d0 = join(dir, 'd0.img');
  makeRawImage(d0, 2, 1, 3);
  const r = await backup({ store, source: 'vm', disks: fileRefs([d0]), consistency: 'application', freezeMs: 40, changeRefs: [{ id: 'b', diskIdentity: 'i', virtualSize: 2 * MiB }] });
  const path = manifestFile(store, 'vm', r.id);
  const now = parseManifest(readFileSync(path, 'utf8'), path);
  // As the code before issue 10 wrote it: no reasons, pause/freeze, tracking, changeRef, bytesSent.
  const { reasons: _r, freezeMs: _f, ...rest } = now;
  const { bytesSent: _s, ...stats } = now.stats;
  const old: PointManifest = { ...rest, stats, disks: now.disks.map(({ tracking: _t, changeRef: _c, stats: ds, ...d }) => ({ ...d, stats: Object.fromEntries(Object.entries(ds!).filter(([k]) => k !== 'bytesSent')) as never })) };
  writeFileSync(path, encodeManifest(old));
  const listed = (await listPoints({ store, source: 'vm' }))[0]!;
  t.notOk(listed.damaged, 'reads');
  if (!listed.damaged) {
    t.same(listed.reasons, [], 'reasons: none recorded');
    t.equal(listed.bytesSent, 0);
    t.equal(listed.freezeMs, undefined);
    t.equal(listed.disks[0]!.tracking, undefined);
  }
  const bad: Array<[string, (m: Record<string, unknown>) => void]> = [
    ['reasons not strings', (m) => (m.reasons = [1])],
    ['negative pause', (m) => (m.pauseMs = -1)],
    ['tracking method', (m) => ((m.disks as Record<string, unknown>[])[0]!.tracking = { method: 'rct' })],
    ['tracking fallback', (m) => ((m.disks as Record<string, unknown>[])[0]!.tracking = { method: 'digest', fallback: 'Not A Code' })],
    ['changeRef shape', (m) => ((m.disks as Record<string, unknown>[])[0]!.changeRef = { id: 1 })],
    ['bytesSent', (m) => ((m.stats as Record<string, unknown>).bytesSent = -5)],
  ];
  for (const [what, edit] of bad) {
    const m = JSON.parse(JSON.stringify(now)) as Record<string, unknown>;
    edit(m);
    const err = (() => {
      try {
        parseManifest(encodeManifest(m as unknown as PointManifest), 'x');
        return null;
      } catch (e) {
        return e;
      }
    })();
    t.ok(hasCode(err, 'SV_ERR_STORE_CORRUPT_MANIFEST'), what);
  }
  const badOpts: Array<[string, Partial<BackupOptions>]> = [
    ['bitmap without a change list', { tracking: [{ method: 'bitmap' }] }],
    ['digest with a change list', { tracking: [{ method: 'digest' }], changed: [[[0, 4096]]] }],
    ['tracking count', { tracking: [null, null] }],
    ['tracking fallback', { tracking: [{ method: 'digest', fallback: 7 as unknown as string }] }],
    ['pause NaN', { pauseMs: Number.NaN }],
    ['changeRef count', { changeRefs: [] }],
    ['reasons type', { reasons: [7 as unknown as string] }],
  ];
  for (const [what, o] of badOpts) t.equal(await asyncErrorCode(() => backup({ store, source: 'vm', disks: fileRefs([d0]), ...o })), 'SV_ERR_SYNC_BAD_OPTIONS', what);
  t.equal(readdirSync(join(store, 'points', 'vm')).length, 1, 'no point from refused options');
});

t.test('bytesSent: an NBD export records the bytes that crossed the socket, per disk and in total', async (t) => {
  const dir = tempDir(t, 'sv-point-nbd-');
  const store = join(dir, 'store');
  const raw = join(dir, 'disk.raw');
  makeRawImage(raw, 8, 5, 9);
  const sock = await nbdkit(t, dir, ['file', `file=${raw}`]);
  const local = join(dir, 'local.img');
  makeRawImage(local, 2, 1, 4);
  const r = await backup({ store, source: 'vm', disks: [{ kind: 'nbd', socket: sock, exportName: '', name: 'vda' }, ...fileRefs([local])] });
  t.equal(r.disks[0]!.name, 'vda', 'the disk is named by the reference');
  t.ok(r.disks[0]!.stats!.bytesRead > 0);
  t.equal(r.disks[0]!.stats!.bytesSent, r.disks[0]!.stats!.bytesRead, 'NBD: every byte read crossed the socket');
  t.equal(r.disks[1]!.stats!.bytesSent, 0, 'the local file: none');
  t.equal(r.bytesSent, r.disks[0]!.stats!.bytesSent, 'the total is the disks\' sum');
});

t.test('API: a point\'s fields in GET .../points', async (t) => {
  const dir = tempDir(t, 'sv-point-api-');
  const engine = new SyncEngine(join(dir, 'data', 'store'));
  const a = await startTestAppliance(t, { dir: join(dir, 'data'), sourceRoots: [dir], deps: { engine } });
  const d0 = join(dir, 'vm-disk0.img');
  makeRawImage(d0, 2, 1, 5);
  const src = (await a.call('admin', 'POST', '/api/v1/sources', { name: 'vmapi', disks: [{ name: 'disk0', path: d0 }] })).json() as { id: string };
  const ctx = { signal: new AbortController().signal, onProgress: () => undefined, log: () => undefined };
  const out = await engine.backup('vmapi', [{ name: 'disk0', source: { kind: 'file', path: d0, roots: [dir] } }], ctx, { consistency: 'application', freezeMs: 250, reasons: [] });
  t.equal(out.consistency, 'application');
  t.equal(out.freezeMs, 250);
  t.same(out.disks.map((d) => [d.bytesSent, d.tracking]), [[0, { method: 'initial', reason: 'first recovery point of the source' }]]);
  const pts = (await a.call('viewer', 'GET', `/api/v1/sources/${src.id}/points`)).json() as Array<Record<string, unknown> & { disks: Array<Record<string, unknown>> }>;
  t.equal(pts.length, 1);
  t.match(pts[0], { consistency: 'application', reasons: [], freezeMs: 250, bytesSent: 0 });
  t.same(pts[0]!.disks[0]!.tracking, { method: 'initial', reason: 'first recovery point of the source' });
  t.equal(pts[0]!.disks[0]!.bytesSent, 0);
});
