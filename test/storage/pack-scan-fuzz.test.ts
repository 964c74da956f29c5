/**
 * The pack record scan repair relies on (storage/pack-scan.ts) is a parser of untrusted bytes: seeded fuzzing
 * with flipped bytes, truncations, spliced and random files. It never throws, always ends, returns only records
 * that lie inside the file with fitting headers, and finds every intact record of a damaged pack (each damage
 * costs only the records it touches).
 */
import t, { type Test } from 'tap';
import { prng } from '../../bench/gen-disk.js';
import { FLAG_RAW, PACK_HEADER_SIZE, PACK_MAGIC, PACK_VERSION, RECORD_HEADER_SIZE } from '../../storage/layout.js';
import { recordHeader } from '../../storage/pack-format.js';
import { MAX_RECORD_RAW, scanPack, type PackScan } from '../../storage/pack-scan.js';

function makePack(rand: () => number, records: number): { buf: Buffer; starts: number[] } {
  const h = Buffer.alloc(PACK_HEADER_SIZE);
  h.write(PACK_MAGIC, 0, 'latin1');
  h.writeUInt32LE(PACK_VERSION, 8);
  h.writeBigUInt64LE(0x1234n, 16);
  const parts: Buffer[] = [h];
  const starts: number[] = [];
  let at = PACK_HEADER_SIZE;
  for (let i = 0; i < records; i++) {
    const len = 1 + Math.floor(rand() * 300);
    const payload = Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
    const digest = Buffer.from(Array.from({ length: 32 }, () => Math.floor(rand() * 256)));
    parts.push(recordHeader(digest, len, len, FLAG_RAW), payload);
    starts.push(at);
    at += RECORD_HEADER_SIZE + len;
  }
  return { buf: Buffer.concat(parts), starts };
}

function sane(t: Test, s: PackScan, buf: Buffer, what: string): void {
  let prev = 0;
  for (const r of s.records) {
    if (r.offset < prev || r.offset + r.storedLength > buf.length || r.rawLength > MAX_RECORD_RAW || r.offset < PACK_HEADER_SIZE + RECORD_HEADER_SIZE) {
      t.fail(`${what}: record at ${r.offset} (${r.storedLength} bytes) outside the file or out of order`);
      return;
    }
    prev = r.offset + r.storedLength;
  }
  t.ok(s.records.length <= buf.length / RECORD_HEADER_SIZE, `${what}: bounded`);
}

t.test('intact pack: every record found, nothing damaged', async (t) => {
  const { buf, starts } = makePack(prng(1), 40);
  const s = scanPack(buf);
  t.equal(s.packId, 0x1234n);
  t.equal(s.headerProblem, null);
  t.same(s.records.map((r) => r.offset - RECORD_HEADER_SIZE), starts);
  t.same(s.damaged, []);
});

t.test('flipped bytes, truncations, splices, random files: no throw, bounded, local damage', async (t) => {
  const rand = prng(9);
  const { buf, starts } = makePack(rand, 30);
  for (let k = 0; k < 400; k++) {
    const b = Buffer.from(buf);
    const pos = Math.floor(rand() * b.length);
    b[pos] = b[pos]! ^ (1 + Math.floor(rand() * 255));
    const s = scanPack(b);
    sane(t, s, b, `flip at ${pos}`);
    // Every record that does not contain the flipped byte (nor follows a header whose length was changed
    // so it swallows it) is still found: at least all records after the damaged one.
    const hit = starts.findIndex((st, i) => pos >= st && pos < (starts[i + 1] ?? b.length));
    const after = starts.slice(hit + 1);
    const found = new Set(s.records.map((r) => r.offset - RECORD_HEADER_SIZE));
    const missed = after.filter((st) => !found.has(st));
    if (missed.length > 1) t.fail(`flip at ${pos} (record ${hit}): ${missed.length} later records lost`);
  }
  for (let len = 0; len < buf.length; len += 97) sane(t, scanPack(buf.subarray(0, len)), buf.subarray(0, len), `truncated to ${len}`);
  for (let k = 0; k < 200; k++) {
    const r = Buffer.from(Array.from({ length: Math.floor(rand() * 2000) }, () => Math.floor(rand() * 256)));
    const s = scanPack(r);
    sane(t, s, r, `random ${k}`);
    if (r.length >= 8 && s.headerProblem === null) t.fail('random bytes taken for a pack header');
  }
  for (let k = 0; k < 100; k++) {
    const cut = Math.floor(rand() * buf.length);
    const b = Buffer.concat([buf.subarray(0, cut), Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256))), buf.subarray(cut)]);
    sane(t, scanPack(b), b, `64 garbage bytes spliced at ${cut}`);
  }
});

t.test('headers that claim huge lengths allocate nothing and are reported', async (t) => {
  const { buf } = makePack(prng(3), 3);
  const b = Buffer.from(buf);
  b.writeUInt32LE(0xffffffff, PACK_HEADER_SIZE + 32);
  b.writeUInt32LE(0xffffffff, PACK_HEADER_SIZE + 36);
  const s = scanPack(b);
  t.equal(s.records.length, 2, 'the next two records are found again');
  t.match(s.damaged[0]?.what ?? '', /raw length|past the end/);
});
