// Matching error codes: one typed helper (`hasCode`), one list of store damage codes, and no hand-written
// `err.code === 'SV_ERR_...'` comparisons left in the product code.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { CATALOGUE } from '../src/errors/catalogue.js';
import { fromWire, hasCode, isDamagedFile, isStoreDamage, STORE_DAMAGE_CODES, SvError } from '../src/errors/index.js';
import { REPO_ROOT } from './helpers/env.js';

t.test('hasCode matches SvErrors, rebuilt WireErrors and foreign objects', async (t) => {
  const e = new SvError('SV_ERR_STORE_CORRUPT_PACK', 'pack 0001: record header at 64 is damaged');
  t.ok(hasCode(e, 'SV_ERR_STORE_CORRUPT_PACK'));
  t.ok(hasCode(e, 'SV_ERR_STORE_MISSING_BLOB', 'SV_ERR_STORE_CORRUPT_PACK'), 'any of several codes');
  t.notOk(hasCode(e, 'SV_ERR_STORE_MISSING_BLOB'));
  t.notOk(hasCode(e), 'no codes: no match');

  const rebuilt = fromWire(e.toWire());
  t.ok(hasCode(rebuilt, 'SV_ERR_STORE_CORRUPT_PACK'), 'a rebuilt error keeps its code');
  t.ok(hasCode(e.toWire(), 'SV_ERR_STORE_CORRUPT_PACK'), 'a plain WireError matches too');
  t.ok(hasCode(fromWire({ code: 'SV_ERR_NOT_A_CODE', message: 'x' }), 'SV_ERR_CORE_INTERNAL'), 'unknown wire codes become internal');

  t.ok(hasCode({ code: 'SV_ERR_NATIVE_DIGEST_MISMATCH' }, 'SV_ERR_NATIVE_DIGEST_MISMATCH'), 'a foreign object with a code');
  t.ok(hasCode(Object.assign(new Error('native'), { code: 'SV_ERR_NATIVE_CORRUPT_PAYLOAD' }), 'SV_ERR_NATIVE_CORRUPT_PAYLOAD'));
  t.notOk(hasCode(Object.assign(new Error('enoent'), { code: 'ENOENT' }), 'SV_ERR_CORE_IO'), 'an errno error is not a catalogued one');
  for (const v of [undefined, null, 'SV_ERR_CORE_IO', 42, {}, { code: 7 }]) t.notOk(hasCode(v, 'SV_ERR_CORE_IO'), `not ${JSON.stringify(v)}`);

  // @ts-expect-error a misspelt code does not compile
  t.notOk(hasCode(e, 'SV_ERR_STORE_CORUPT_PACK'));
});

t.test('one list of store damage codes, all catalogued', async (t) => {
  t.ok(STORE_DAMAGE_CODES.length > 0);
  t.equal(new Set(STORE_DAMAGE_CODES).size, STORE_DAMAGE_CODES.length, 'no code twice');
  for (const code of STORE_DAMAGE_CODES) {
    t.ok(Object.hasOwn(CATALOGUE, code), `${code} is in the catalogue`);
    t.ok(isStoreDamage(new SvError(code, 'x')), `${code} is damage`);
    t.ok(isStoreDamage({ code }), `${code} is damage on a foreign object`);
  }
  t.notOk(isStoreDamage(new SvError('SV_ERR_CORE_IO', 'read failed')), 'an I/O error is not damage');
  t.notOk(isStoreDamage(new SvError('SV_ERR_STORE_CORRUPT_REFS', 'refs')), 'a damaged refs table is not block damage');

  t.ok(isDamagedFile(new SvError('SV_ERR_STORE_CORRUPT_INDEX', 'x'), 'SV_ERR_STORE_CORRUPT_INDEX'));
  t.ok(isDamagedFile(new SvError('SV_ERR_STORE_BAD_VERSION', 'x'), 'SV_ERR_STORE_CORRUPT_MANIFEST'));
  t.ok(isDamagedFile(new SvError('SV_ERR_STORE_FOREIGN_FILE', 'x'), 'SV_ERR_STORE_CORRUPT_MANIFEST'));
  t.notOk(isDamagedFile(new SvError('SV_ERR_STORE_CORRUPT_INDEX', 'x'), 'SV_ERR_STORE_CORRUPT_MANIFEST'), 'another kind of file');
});

/** TypeScript sources under `dir`, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sources(path);
    return d.name.endsWith('.ts') ? [path] : [];
  });
}

t.test('no error code is compared as a string by hand', async (t) => {
  // `x.code === 'SV_ERR_...'`, `code !== "SV_ERR_..."`, `case 'SV_ERR_...':` and Sets of codes: use hasCode.
  const hand = /\bcode\s*[!=]==?\s*['"`]SV_ERR_|['"`]SV_ERR_[A-Z0-9_]+['"`]\s*[!=]==?\s*[\w.?]*code\b|case\s+['"`]SV_ERR_|new Set\(\s*\[\s*['"`]SV_ERR_/;
  const found: string[] = [];
  for (const dir of ['src', 'storage', 'workers', 'bench']) {
    for (const file of sources(join(REPO_ROOT, dir))) {
      if (file.startsWith(join(REPO_ROOT, 'src', 'errors'))) continue; // the helper itself
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        if (hand.test(line)) found.push(`${relative(REPO_ROOT, file)}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  t.same(found, [], 'match codes with hasCode(err, ...) or isStoreDamage(err) from src/errors/index.ts');
});
