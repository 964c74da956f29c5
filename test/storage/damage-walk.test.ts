/**
 * Store damage stays local (issue 9, D4-D6): every kind of store file (pack, index segment, manifest, gc's
 * reference table, source settings, bad list, lock, stray files in packs/, index/ and points/) gets every kind of
 * damage (a flipped byte, truncation, deletion, garbage, a FIFO, a folder) in a copy of one small store. For each
 * case: which points are affected (only those that need the damaged file; every other restores bit-identical;
 * nothing hangs, every failure is a coded error), what gc does, and that `repair` recovers everything the
 * packs still hold: after it, a point restores bit-identical exactly when repair reports it intact or recovered.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { closePool } from '../../src/pool/index.js';
import { gc, repair } from '../../src/sync/index.js';
import { requireTool, tempDir } from '../helpers/env.js';
import { buildStore, copyStore, DAMAGES, damage, key, restoreAll, type BuiltStore, type Damage } from './damage-helpers.js';

t.teardown(() => closePool());

const code = async (fn: () => Promise<unknown>): Promise<string> => {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code ?? (err as Error).message);
  }
};

type Kind = 'pack' | 'segment' | 'manifest' | 'refs' | 'settings' | 'bad-list' | 'lock' | 'stray-pack' | 'stray-segment' | 'stray-point';

/** The file of each kind in a copy (vm1's first point's pack, segment and manifest). */
function target(s: BuiltStore, kind: Kind): string {
  const a = s.points[0]!;
  switch (kind) {
    case 'pack': return s.packOf.get(key(a))!;
    case 'segment': return s.segmentOf.get(key(a))!;
    case 'manifest': return join(s.store, 'points', 'vm1', `${a.id}.json`);
    case 'refs': return join(s.store, 'gc-refs.bin');
    case 'settings': return join(s.store, 'sources', 'vm1.json');
    case 'bad-list': return join(s.store, 'bad.json');
    case 'lock': return join(s.store, 'locks', 'source-vm1.lock');
    case 'stray-pack': return join(s.store, 'packs', 'ffffffffffffffff.pack');
    case 'stray-segment': return join(s.store, 'index', '99999999999999999999-000000.idx');
    case 'stray-point': return join(s.store, 'points', 'vm1', 'notes.json');
  }
}

const STRAY: readonly Damage[] = ['garbage', 'fifo', 'folder'];
const KINDS: ReadonlyArray<[Kind, readonly Damage[]]> = [
  ['pack', DAMAGES], ['segment', DAMAGES], ['manifest', DAMAGES], ['refs', DAMAGES], ['settings', DAMAGES], ['bad-list', DAMAGES], ['lock', DAMAGES],
  ['stray-pack', STRAY], ['stray-segment', STRAY], ['stray-point', STRAY],
];

t.test('every kind of store file, every kind of damage', async (t) => {
  requireTool('mkfifo');
  const dir = tempDir(t, 'sv-walk-');
  const built = await buildStore(dir);
  await gc({ store: built.store }); // leaves gc-refs.bin and gc.json
  writeFileSync(join(built.store, 'bad.json'), JSON.stringify({ digests: [] }));
  writeFileSync(join(built.store, 'locks', 'source-vm1.lock'), JSON.stringify({ pid: 2 ** 22 + 1, host: (await import('node:os')).hostname(), boot: 'x', operation: 'backup', since: '2020-01-01' }));
  const [a, b, c] = built.points.map(key) as [string, string, string];
  let n = 0;
  for (const [kind, damages] of KINDS) {
    for (const how of damages) {
      const s = copyStore(built, join(dir, 'case'));
      const file = target(s, kind);
      damage(file, how, ++n);
      const name = `${kind} ${how}`;
      const before = await restoreAll(s, join(dir, 'out'));
      for (const [p, r] of Object.entries(before)) t.not(r, 'differs', `${name}: ${p} never restores wrong data`);
      t.equal(before[c], 'ok', `${name}: vm2 restores bit-identical`);
      if (kind !== 'pack' && kind !== 'segment' && kind !== 'manifest') t.same(before, { [a]: 'ok', [b]: 'ok', [c]: 'ok' }, `${name}: every point restores`);
      if (kind === 'manifest') t.equal(before[b], 'ok', `${name}: the other point of vm1 restores`);
      if (kind === 'manifest') t.not(before[a], 'ok', `${name}: the damaged point is refused (${before[a]})`);
      if (kind === 'segment') t.ok(before[a] !== 'ok' && before[b] !== 'ok', `${name}: the points whose blocks the segment listed fail (${before[a]}, ${before[b]})`);
      const g = await code(() => gc({ store: s.store }));
      if (kind === 'segment' && how !== 'delete') t.equal(g, 'SV_ERR_STORE_NEEDS_REPAIR', `${name}: gc waits for a repair`);
      else if (kind === 'stray-segment') t.equal(g, 'SV_ERR_STORE_NEEDS_REPAIR', `${name}: gc waits for a repair`);
      else if (kind !== 'pack' && kind !== 'segment') t.equal(g, 'ok', `${name}: gc runs`);
      else t.match(g, /^(ok|SV_ERR_)/, `${name}: gc runs or stops with a coded error (${g})`);
      const r = await repair({ store: s.store });
      const after = await restoreAll(s, join(dir, 'out'));
      const show = (r: Record<string, string>): string => Object.entries(r).filter(([, v]) => v !== 'ok').map(([p, v]) => `${p.slice(0, 12)}…=${v}`).join(' ') || 'all ok';
      t.comment(`${name}: before repair ${show(before)}; gc ${g}; repair: ${r.entriesRecovered} recovered, ${r.quarantined.length} quarantined; after ${show(after)}`);
      t.equal(after[c], 'ok', `${name}: vm2 restores after repair`);
      for (const p of r.points) {
        if (p.status === 'damaged') continue;
        const good = p.status === 'intact' || p.status === 'recovered';
        t.equal(after[p.point] === 'ok', good, `${name}: ${p.point} reported ${p.status}, restore says ${after[p.point]}`);
      }
      if (kind === 'manifest') {
        t.same(r.points.find((p) => p.point === a)?.status, how === 'delete' ? undefined : 'damaged', `${name}: repair reports the damaged manifest`);
        t.equal(after[b], 'ok');
      } else if (kind !== 'pack') t.same(after, { [a]: 'ok', [b]: 'ok', [c]: 'ok' }, `${name}: after repair every point restores`);
      else if (how === 'flip') t.ok(r.recordsBad <= 1, `${name}: one flipped byte costs at most one record (${r.recordsBad})`);
      const g2 = await code(() => gc({ store: s.store }));
      if (kind === 'pack') t.match(g2, /^(ok|SV_ERR_)/, `${name}: gc after repair runs or stops with a coded error (${g2})`);
      else t.equal(g2, 'ok', `${name}: gc runs after repair`);
    }
  }
});
