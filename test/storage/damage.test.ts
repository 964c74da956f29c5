/**
 * A store with a truncated index segment, a corrupt manifest or a damaged page: coded errors, never silent, and
 * the damage stays local (issue 9: the manifest is listed as damaged, the segment quarantined; see also
 * test/storage/damage-walk.test.ts).
 */
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { generateDisk } from '../../bench/gen-disk.js';
import { tempDir } from '../helpers/env.js';
import { sv, svJson, type Point } from '../sync/helpers.js';

t.test('damaged index, manifest, page', async (t) => {
  const dir = tempDir(t);
  const disk = join(dir, 'disk.raw');
  const store = join(dir, 'store');
  generateDisk(disk, 8 << 20, 4);
  const p = svJson<Point>(['backup', disk, '--store', store, '--source', 'vm1']);
  const manifest = join(store, 'points', 'vm1', `${p.id}.json`);
  const text = readFileSync(manifest, 'utf8');
  writeFileSync(manifest, text.slice(0, text.length - 30));
  const r1 = sv(['points', '--store', store, 'vm1']);
  t.equal(r1.code, 0, 'listing works');
  t.match(r1.stdout, /DAMAGED SV_ERR_STORE_CORRUPT_MANIFEST: manifest .*\.json: not valid JSON/);
  writeFileSync(manifest, text.replace('"crash"', '"offline"'));
  t.match(sv(['restore', 'vm1', '--store', store, '--out', join(dir, 'o.raw')]).stderr, /SV_ERR_STORE_CORRUPT_MANIFEST: .*checksum mismatch/);
  writeFileSync(manifest, text);
  const seg = join(store, 'index', readdirSync(join(store, 'index')).find((n) => n.endsWith('.idx'))!);
  const segBytes = readFileSync(seg);
  truncateSync(seg, segBytes.length - 10);
  const r2 = sv(['restore', 'vm1', '--store', store, '--out', join(dir, 'o.raw')]);
  t.match(r2.stderr, /warning: index segment .* quarantined .*SV_ERR_STORE_CORRUPT_INDEX: index segment .*: size \d+ bytes, header says \d+ entries/);
  t.match(r2.stderr, /SV_ERR_STORE_MISSING_BLOB/, 'the point whose blocks it listed cannot be restored');
  t.equal(sv(['repair', '--store', store]).code, 0, 'repair rebuilds the index from the pack');
  t.equal(sv(['restore', 'vm1', '--store', store, '--out', join(dir, 'o.raw')]).code, 0);
});
