/**
 * Bounded fuzz of the Hyper-V host layer's output parsers (src/hypervisor/hyperv/records.ts): mutated script
 * outputs (the fixtures of test/fixtures/hyperv/, as text: flipped, cut or inserted bytes; as JSON: leaves
 * replaced by other types, keys deleted, objects wrapped in arrays or unwrapped) either parse into records of
 * the documented types or throw a catalogued code. Never a TypeError, never a record with a wrong type.
 * Seeded, so a failure names a reproducible case.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../bench/data.js';
import { hasCode } from '../../src/errors/index.js';
import {
  parseCheckpoints, parseDiskChanges, parseEnvelope, parseReferencePoints, parseVms,
} from '../../src/hypervisor/hyperv/records.js';
import { REPO_ROOT } from '../helpers/env.js';

const fixtures = join(REPO_ROOT, 'test', 'fixtures', 'hyperv');
const PARSERS: Record<string, (data: unknown) => unknown> = {
  'vm-inventory.json': (d) => parseVms('vm-inventory.ps1', d),
  'checkpoints.json': (d) => parseCheckpoints('checkpoints.ps1', d),
  'reference-points.json': (d) => parseReferencePoints('reference-points.ps1', d),
  'disk-changes.json': (d) => parseDiskChanges('disk-changes.ps1', d, 0, 1 << 30),
  'failure-job.json': (d) => d,
  'failure-rct-invalid.json': (d) => d,
};

function check(value: unknown): string | undefined {
  // Every number in a parsed record is a safe non-negative integer; every string a string.
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? undefined : `number ${value}`;
  if (Array.isArray(value)) return value.map(check).find(Boolean);
  if (value && typeof value === 'object') return Object.values(value).map(check).find(Boolean);
  return undefined;
}

function mutateJson(v: unknown, rand: () => number): unknown {
  const odd = [null, true, -1, 1.5, 2 ** 60, '', 'x', [], {}, [1], { a: 1 }];
  if (rand() < 0.15) return odd[Math.floor(rand() * odd.length)];
  if (Array.isArray(v)) {
    if (rand() < 0.1) return v[0];
    return v.map((x) => mutateJson(x, rand));
  }
  if (v && typeof v === 'object') {
    if (rand() < 0.05) return [v];
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (rand() > 0.05) out[k] = mutateJson(x, rand);
    return out;
  }
  return v;
}

t.test('mutated outputs: typed records or a catalogued code', async (t) => {
  const rand = prng(0x4a1f);
  const rounds = process.env.SHADOWVAULT_SOAK ? 20_000 : 2000;
  let parsed = 0;
  let refused = 0;
  for (let i = 0; i < rounds; i++) {
    const names = Object.keys(PARSERS);
    const name = names[Math.floor(rand() * names.length)]!;
    let text = readFileSync(join(fixtures, name), 'utf8');
    if (rand() < 0.5) {
      const buf = Buffer.from(text);
      const kind = Math.floor(rand() * 3);
      const at = Math.floor(rand() * buf.length);
      if (kind === 0) buf[at] = Math.floor(rand() * 256);
      text = kind === 1 ? buf.subarray(0, at).toString('latin1') : kind === 2 ? `${text.slice(0, at)}${String.fromCharCode(Math.floor(rand() * 128))}${text.slice(at)}` : buf.toString('latin1');
    } else {
      text = JSON.stringify(mutateJson(JSON.parse(text), rand));
    }
    try {
      const record = PARSERS[name]!(parseEnvelope(name, text));
      const wrong = check(record);
      if (wrong) t.fail(`round ${i} (${name}): parsed a record with ${wrong}`);
      parsed++;
    } catch (err) {
      if (!hasCode(err, 'SV_ERR_HYPERV_BAD_OUTPUT', 'SV_ERR_HYPERV_RCT_INVALID', 'SV_ERR_HYPERV_JOB_FAILED', 'SV_ERR_HYPERVISOR_VM_NOT_FOUND', 'SV_ERR_HYPERV_HOST')) {
        t.fail(`round ${i} (${name}): uncatalogued ${String((err as Error)?.stack ?? err)}`);
      }
      refused++;
    }
  }
  t.ok(refused > rounds / 4 && parsed > 0, `${parsed} parsed, ${refused} refused with a code`);
});
