/**
 * The disk source registry: malformed references and unknown kinds get coded errors; a kind is registered
 * once (or replaced on purpose); and the engine thread's hook: a module named in ThreadedEngine's
 * `openerModules` registers a late opener (here a stand-in `agent` opener) that a backup then uses, while
 * without it the same backup fails with SV_ERR_SOURCE_NO_OPENER.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ThreadedEngine } from '../../src/appliance/engine/threaded.js';
import type { EngineContext } from '../../src/appliance/engine/index.js';
import { closePool } from '../../src/pool/index.js';
import { hasOpener, openDiskSource, registerOpener } from '../../src/sources/registry.js';
import { openFileSource } from '../../src/sources/file.js';
import type { DiskSourceRef } from '../../src/sources/types.js';
import { tempDir } from '../helpers/env.js';
import { SIZE, writeTestImage } from './contract.js';
import { asyncErrorCode } from '../helpers/codes.js';

t.teardown(closePool);


t.test('malformed references: SV_ERR_SOURCE_BAD_REF; no opener: SV_ERR_SOURCE_NO_OPENER', async (t) => {
  const bad: unknown[] = [
    null, 'file', [], {}, { kind: 'tape' }, { kind: 'file' }, { kind: 'file', path: '' }, { kind: 'file', path: 7 },
    { kind: 'file', path: '/x', format: 'qcow2' }, { kind: 'file', path: '/x', roots: '/' }, { kind: 'nbd', socket: '/s', name: 'n' },
    { kind: 'nbd', socket: '/s', exportName: '', name: '' }, { kind: 'agent', agentId: 'a', session: 's', disk: -1, name: 'n', virtualSize: 1 },
    { kind: 'agent', agentId: 'a', session: 's', disk: 0, name: 'n', virtualSize: 1.5 }, { kind: 'file', path: 'a\0b' },
  ];
  for (const ref of bad) t.equal(await asyncErrorCode(() => openDiskSource(ref as DiskSourceRef)), 'SV_ERR_SOURCE_BAD_REF', JSON.stringify(ref));
  t.notOk(hasOpener('agent'), 'no agent opener in a plain process');
  t.equal(await asyncErrorCode(() => openDiskSource({ kind: 'agent', agentId: 'a1', session: 's', disk: 0, name: 'd0', virtualSize: 4096 })), 'SV_ERR_SOURCE_NO_OPENER');
  t.equal(await asyncErrorCode(() => openDiskSource({ kind: 'file', path: '/nonexistent/disk.raw' })), 'SV_ERR_CORE_IO', 'a missing file: its own coded error');
});

t.test('a kind is registered once, or replaced on purpose', async (t) => {
  t.throws(() => registerOpener('file', openFileSource), { code: 'SV_ERR_CORE_INVALID_ARGUMENT' });
  t.doesNotThrow(() => registerOpener('file', openFileSource, { replace: true }));
});

t.test('engine thread: a late opener registered through openerModules', async (t) => {
  const dir = tempDir(t, 'sv-registry-');
  const raw = join(dir, 'disk.raw');
  writeTestImage(raw);
  const ref: DiskSourceRef = { kind: 'agent', agentId: 'a1', session: raw, disk: 0, name: 'vda', virtualSize: SIZE };
  const ctx = (): EngineContext => ({ signal: new AbortController().signal, onProgress: () => undefined, log: () => undefined });

  const without = new ThreadedEngine(join(dir, 'store1'));
  t.teardown(() => without.close());
  t.equal(await asyncErrorCode(() => without.backup('vm', [{ name: 'vda', source: ref }], ctx())), 'SV_ERR_SOURCE_NO_OPENER', 'no hook: the thread cannot open an agent disk');

  const module = new URL('./fixtures/agent-as-file.js', import.meta.url).href;
  const engine = new ThreadedEngine(join(dir, 'store2'), { openerModules: [module] });
  t.teardown(() => engine.close());
  const out = await engine.backup('vm', [{ name: 'vda', source: ref }], ctx());
  t.ok(out.pointId, `point ${out.pointId} through the late opener`);
  const points = await engine.listPoints('vm');
  t.equal(points[0]?.disks[0]?.name, 'vda', 'the point names the disk by the reference\'s name');
  const restored = join(dir, 'restored.raw');
  await engine.restore({ source: 'vm', pointId: out.pointId, disk: 0, target: restored, format: 'raw' }, ctx());
  t.ok(readFileSync(restored).equals(readFileSync(raw)), 'the restored disk is the source\'s bytes');
});
