/** The Range header parser (src/api/range.ts) and the download limiter (src/appliance/downloads.ts). */
import t from 'tap';
import { parseRange } from '../../src/api/range.js';
import { DownloadLimiter } from '../../src/appliance/downloads.js';
import { hasCode } from '../../src/errors/index.js';

t.test('parseRange: single ranges, suffixes, unsatisfiable, ignored headers', async (t) => {
  const L = 1000;
  t.same(parseRange(undefined, L), { kind: 'none' });
  t.same(parseRange('bytes=0-99', L), { kind: 'range', start: 0, end: 99 });
  t.same(parseRange('bytes=990-', L), { kind: 'range', start: 990, end: 999 });
  t.same(parseRange('bytes=-10', L), { kind: 'range', start: 990, end: 999 });
  t.same(parseRange('bytes=-5000', L), { kind: 'range', start: 0, end: 999 }, 'a suffix longer than the file: all of it');
  t.same(parseRange('bytes=500-5000', L), { kind: 'range', start: 500, end: 999 }, 'end clipped');
  t.same(parseRange('Bytes = 1-1', L), { kind: 'range', start: 1, end: 1 });
  t.same(parseRange('bytes=1000-', L), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=99999999999999999999999-', L), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=-0', L), { kind: 'unsatisfiable' });
  for (const ignored of ['bytes=0-1,5-6', 'items=0-1', 'bytes=5-1', 'bytes=-', 'bytes=a-b', 'bytes 0-1', '']) {
    t.same(parseRange(ignored, L), { kind: 'none' }, JSON.stringify(ignored));
  }
});

t.test('parseRange: seeded fuzz, never throws, ranges inside the file', async (t) => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const alphabet = 'bytes=-0123456789, \t;x';
  for (let i = 0; i < 20000; i++) {
    const len = rnd(5000);
    let h = rnd(2) ? 'bytes=' : '';
    for (let k = rnd(12); k > 0; k--) h += alphabet[rnd(alphabet.length)];
    const r = parseRange(h, len);
    if (r.kind === 'range' && !(r.start >= 0 && r.start <= r.end && r.end < len)) t.fail(`${JSON.stringify(h)} of ${len}: ${JSON.stringify(r)}`);
  }
  t.pass('20000 headers');
});

t.test('DownloadLimiter: per token, per appliance, idempotent release', async (t) => {
  const l = new DownloadLimiter(3, 2);
  const a1 = l.acquire('a');
  const a2 = l.acquire('a');
  const err = (() => { try { l.acquire('a'); } catch (e) { return e; } })();
  t.ok(hasCode(err, 'SV_ERR_API_TOO_MANY_DOWNLOADS'));
  t.match(err, { status: 429, details: { scope: 'token', limit: 2, retryAfterSeconds: 5 } });
  const b1 = l.acquire('b');
  t.throws(() => l.acquire('c'), { code: 'SV_ERR_API_TOO_MANY_DOWNLOADS', details: { scope: 'appliance', limit: 3 } });
  a1();
  a1();
  t.equal(l.active, 2, 'a release counts once');
  const c1 = l.acquire('c');
  t.throws(() => l.acquire('a'), { code: 'SV_ERR_API_TOO_MANY_DOWNLOADS', details: { scope: 'appliance' } });
  for (const r of [a2, b1, c1]) r();
  t.equal(l.active, 0);
  l.acquire('a');
  l.acquire('a');
  t.pass('a token gets its slots back');
});
