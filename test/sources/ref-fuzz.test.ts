/**
 * Seeded fuzz of the disk source reference check (src/sources/ref.ts): references arrive as JSON from the
 * API, the state files, the engine thread and agents. Mutated references (fields dropped, retyped, replaced
 * by hostile values, unknown kinds) are either accepted as well-formed or refused with SV_ERR_SOURCE_BAD_REF:
 * never another error, never a crash.
 */
import t from 'tap';
import { hasCode } from '../../src/errors/index.js';
import { checkSourceRef, sourceName } from '../../src/sources/registry.js';
import { rng } from '../formats/vhd-fixture-helpers.js';

const VALID: Record<string, unknown>[] = [
  { kind: 'file', path: '/srv/vm/disk0.vhdx', format: 'vhdx', roots: ['/srv'] },
  { kind: 'file', path: 'disk.raw' },
  { kind: 'nbd', socket: '/run/sv/nbd.sock', exportName: 'vda', name: 'vda', bitmapContext: 'qemu:dirty-bitmap:sv-1' },
  { kind: 'agent', agentId: 'ag-1', session: 's-1', disk: 2, name: 'scsi0', virtualSize: 1 << 30 },
];

const HOSTILE: unknown[] = [
  undefined, null, true, 0, -1, 1.5, NaN, Infinity, 2 ** 60, '', 'x', 'a\0b', 'z'.repeat(5000), [], ['/'], [1], {}, { kind: 'file' },
  { toString: 1 }, Object.create(null),
];

t.test('mutated references: accepted or SV_ERR_SOURCE_BAD_REF', async (t) => {
  const rand = rng(20261202);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  let accepted = 0;
  let refused = 0;
  for (let round = 0; round < 5000; round++) {
    const ref: Record<string, unknown> = { ...pick(VALID) };
    const keys = [...Object.keys(ref), 'kind', 'extra', '__proto__', 'constructor'];
    for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) {
      const key = pick(keys);
      const r = rand();
      if (r < 0.3) delete ref[key];
      else if (r < 0.5) ref[key] = pick(HOSTILE);
      else if (r < 0.6) ref.kind = pick(['file', 'nbd', 'agent', 'FILE', 'tape', '']);
      else ref[key] = pick(VALID)[key];
    }
    const input: unknown = rand() < 0.05 ? pick(HOSTILE) : ref;
    try {
      checkSourceRef(input);
      accepted++;
      if (typeof sourceName(input) !== 'string') t.fail(`round ${round}: accepted reference without a name`);
    } catch (err) {
      refused++;
      if (!hasCode(err, 'SV_ERR_SOURCE_BAD_REF')) t.fail(`round ${round}: ${String(err)} for ${JSON.stringify(input)}`);
    }
  }
  t.ok(accepted > 100 && refused > 1000, `accepted ${accepted}, refused ${refused}`);
});
