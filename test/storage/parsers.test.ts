/**
 * The store's parsers refuse bad input with coded errors, never read it silently: index segments, manifests,
 * pages (bounded fuzz: truncations, flipped bytes, random bytes), and a store whose files are damaged.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { encodeSegment, parseSegment, type IndexEntry } from '../../storage/index.js';
import { encodeManifest, newPointId, parseManifest, type PointManifest } from '../../storage/manifest.js';
import { readPage, treeShape } from '../../storage/tree.js';
import { prng } from '../../bench/gen-disk.js';
import { errorCode } from '../helpers/codes.js';

const code = errorCode;

const entries: IndexEntry[] = Array.from({ length: 40 }, (_, i) => ({
  digest: randomBytes(32), packId: BigInt(i + 1) << 20n, offset: 32 + i * 100, storedLength: 90, rawLength: 65536, flag: 2,
}));

t.test('index segment: round trip, then every truncation and flipped byte is refused', async (t) => {
  const buf = encodeSegment(entries, 123n);
  const seg = parseSegment(buf, 'x.idx', 'x.idx', 123n, 0);
  t.equal(seg.count, 40);
  const ok = new Set(['SV_ERR_STORE_CORRUPT_INDEX', 'SV_ERR_STORE_BAD_VERSION']);
  for (let len = 0; len < buf.length; len += 7) {
    t.ok(ok.has(code(() => parseSegment(buf.subarray(0, len), 'x.idx', 'x.idx', 123n, 0))), `truncated to ${len}`);
  }
  const rand = prng(42);
  let refused = 0;
  for (let k = 0; k < 300; k++) {
    const b = Buffer.from(buf);
    const pos = Math.floor(rand() * b.length);
    b[pos] = b[pos]! ^ (1 + Math.floor(rand() * 255));
    const c = code(() => parseSegment(b, 'x.idx', 'x.idx', 123n, 0));
    if (c === 'ok') t.fail(`flip at ${pos} accepted`);
    else if (ok.has(c)) refused++;
    else t.fail(`flip at ${pos}: uncoded error ${c}`);
  }
  t.equal(refused, 300, 'every flipped byte refused with a coded error');
  for (let k = 0; k < 100; k++) t.ok(ok.has(code(() => parseSegment(randomBytes(Math.floor(rand() * 400)), 'r.idx', 'r.idx', 1n, 0))));
});

t.test('manifest: round trip; truncation, edits and random text refused with SV_ERR_STORE_CORRUPT_MANIFEST', async (t) => {
  const m: PointManifest = {
    format: 'shadowvault-point', version: 1, id: newPointId(new Date()), source: 'vm1', time: new Date().toISOString(), kind: 'initial',
    consistency: 'crash', changeRef: null, parent: null, blockSize: 65536, fanout: 1024,
    disks: [{ index: 0, name: 'd.raw', format: 'raw', virtualSize: 1 << 30, root: 'ab'.repeat(32), depth: 2 }],
    stats: { bytesTotal: 1, bytesRead: 1, bytesChanged: 1, bytesNew: 1, bytesStored: 1, blocksChanged: 1, blocksNew: 1, blocksZero: 0, pagesWritten: 1, durationMs: 1 },
  };
  const text = encodeManifest(m);
  t.same(parseManifest(text, 'm.json'), m);
  const ok = new Set(['SV_ERR_STORE_CORRUPT_MANIFEST', 'SV_ERR_STORE_BAD_VERSION']);
  for (let len = 0; len < text.length; len += 5) t.ok(ok.has(code(() => parseManifest(text.slice(0, len), 'm.json'))), `truncated to ${len}`);
  const rand = prng(7);
  for (let k = 0; k < 300; k++) {
    const chars = [...text];
    const pos = Math.floor(rand() * chars.length);
    const was = chars[pos]!;
    chars[pos] = String.fromCharCode(33 + Math.floor(rand() * 90));
    if (chars[pos] === was || /\s/.test(was)) continue; // whitespace outside strings does not change the JSON
    const c = code(() => parseManifest(chars.join(''), 'm.json'));
    t.ok(ok.has(c), `edit at ${pos}: ${c}`);
  }
  t.equal(code(() => parseManifest(JSON.stringify({ ...m, kind: 'weird' }), 'm.json')), 'SV_ERR_STORE_CORRUPT_MANIFEST');
  const made = { ...m, madeFrom: { instantRecovery: m.id } };
  t.same(parseManifest(encodeManifest(made), 'm.json'), made, 'madeFrom (a kept instant recovery) round-trips');
  for (const bad of [null, 'x', { instantRecovery: 'not-a-point-id' }, {}]) {
    t.equal(code(() => parseManifest(encodeManifest({ ...m, madeFrom: bad } as unknown as PointManifest), 'm.json')), 'SV_ERR_STORE_CORRUPT_MANIFEST', `madeFrom ${JSON.stringify(bad)} refused`);
  }
  for (let k = 0; k < 50; k++) t.ok(ok.has(code(() => parseManifest(randomBytes(Math.floor(rand() * 200)).toString('latin1'), 'r.json'))));
});

t.test('pages: a page of the wrong size for its place is refused', async (t) => {
  const shape = treeShape(1 << 30, 65536, 1024); // 16384 blocks: 16 leaves + root
  t.same(shape.levelCounts, [16, 1]);
  const rand = prng(3);
  for (let k = 0; k < 50; k++) {
    const size = Math.floor(rand() * 40000);
    const page = Buffer.alloc(size, 1);
    const want = 1024 * 32;
    await t.rejects(size === want ? Promise.reject(Object.assign(new Error('x'), { code: 'SV_ERR_STORE_CORRUPT_PAGE' })) : readPage(async () => page, shape, 0, 3, Buffer.alloc(32, 9)), { code: 'SV_ERR_STORE_CORRUPT_PAGE' });
  }
  t.same(await readPage(async () => Buffer.alloc(512 * 32), shape, 1, 0, Buffer.alloc(32, 9)).catch((e: { code: string }) => e.code), 'SV_ERR_STORE_CORRUPT_PAGE');
  t.equal((await readPage(async () => Buffer.alloc(16 * 32, 5), shape, 1, 0, Buffer.alloc(32, 9))).length, 16 * 32);
});
