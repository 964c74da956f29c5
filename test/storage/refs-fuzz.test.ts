/**
 * gc's reference table file (storage/refs.ts): round trip; every truncation, flipped byte and random file is
 * refused with SV_ERR_STORE_CORRUPT_REFS; and with the checksum fixed up after the damage (so the semantic
 * checks are reached), edits of the body and records are either a valid table or refused with that code.
 * The hash table itself agrees with a Map under random adds/subtractions (growth included).
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { prng } from '../../bench/gen-disk.js';
import { REFS_HEADER_SIZE } from '../../storage/layout.js';
import { encodeRefState, parseRefState, RefTable, type PointRefs, type RefState } from '../../storage/refs.js';
import { errorCode } from '../helpers/codes.js';

const code = errorCode;

function sample(): RefState {
  const table = new RefTable(4);
  for (let i = 0; i < 50; i++) {
    const d = randomBytes(32);
    if (i % 3) table.addBlock(d);
    else table.addPage(d);
    if (i % 7 === 0) table.addBlock(d);
  }
  const points = new Map<string, PointRefs>();
  for (const id of ['20261124T101010000Z-abcdef', '20261124T111111000Z-012345']) {
    points.set(`vm1/${id}`, { source: 'vm1', id, blockSize: 65536, fanout: 1024, disks: [{ root: 'cd'.repeat(32), virtualSize: 1 << 30 }] });
  }
  return { store: 'store-id', points, table };
}

const fixSum = (b: Buffer): Buffer => {
  createHash('sha256').update(b.subarray(REFS_HEADER_SIZE)).digest().copy(b, 32);
  return b;
};

t.test('round trip', async (t) => {
  const s = sample();
  const back = parseRefState(encodeRefState(s), 'r.bin');
  t.equal(back.store, 'store-id');
  t.same([...back.points.keys()], [...s.points.keys()]);
  t.same([...back.table.toMap()].sort(), [...s.table.toMap()].sort());
});

t.test('truncations, flipped bytes and random files are refused with SV_ERR_STORE_CORRUPT_REFS', async (t) => {
  const buf = encodeRefState(sample());
  for (let len = 0; len < buf.length; len += 11) t.equal(code(() => parseRefState(buf.subarray(0, len), 'r.bin')), 'SV_ERR_STORE_CORRUPT_REFS', `truncated to ${len}`);
  const rand = prng(3);
  let refused = 0;
  for (let k = 0; k < 300; k++) {
    const b = Buffer.from(buf);
    const pos = Math.floor(rand() * b.length);
    b[pos] = b[pos]! ^ (1 + Math.floor(rand() * 255));
    if (code(() => parseRefState(b, 'r.bin')) === 'SV_ERR_STORE_CORRUPT_REFS') refused++;
  }
  t.equal(refused, 300, 'every flipped byte refused');
  for (let k = 0; k < 100; k++) t.equal(code(() => parseRefState(randomBytes(Math.floor(rand() * 600)), 'r.bin')), 'SV_ERR_STORE_CORRUPT_REFS');
});

t.test('damage behind a valid checksum: a valid table or SV_ERR_STORE_CORRUPT_REFS, never another error', async (t) => {
  const buf = encodeRefState(sample());
  const rand = prng(11);
  const seen = new Map<string, number>();
  for (let k = 0; k < 600; k++) {
    const b = Buffer.from(buf);
    const n = 1 + Math.floor(rand() * 3);
    for (let j = 0; j < n; j++) {
      const pos = REFS_HEADER_SIZE + Math.floor(rand() * (b.length - REFS_HEADER_SIZE));
      b[pos] = rand() < 0.3 ? 0 : b[pos]! ^ (1 + Math.floor(rand() * 255));
    }
    const c = code(() => parseRefState(fixSum(b), 'r.bin'));
    seen.set(c, (seen.get(c) ?? 0) + 1);
  }
  t.same([...seen.keys()].filter((c) => c !== 'ok' && c !== 'SV_ERR_STORE_CORRUPT_REFS'), [], `outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
  t.ok((seen.get('SV_ERR_STORE_CORRUPT_REFS') ?? 0) > 100, 'most edits are caught by the semantic checks');
  // Specific semantic damage, each refused.
  const s = sample();
  const dup = encodeRefState(s);
  const first = REFS_HEADER_SIZE + dup.readUInt32LE(16);
  dup.copy(dup, first + 40, first, first + 32); // record 1 gets record 0's digest
  t.match(code(() => parseRefState(fixSum(dup), 'r.bin')), 'SV_ERR_STORE_CORRUPT_REFS', 'a digest twice');
  const zero = encodeRefState(s);
  zero.fill(0, first + 32, first + 40);
  t.equal(code(() => parseRefState(fixSum(zero), 'r.bin')), 'SV_ERR_STORE_CORRUPT_REFS', 'a record with no references');
  const zd = encodeRefState(s);
  zd.fill(0, first, first + 32);
  t.equal(code(() => parseRefState(fixSum(zd), 'r.bin')), 'SV_ERR_STORE_CORRUPT_REFS', 'the zero digest');
});

t.test('the hash table agrees with a Map under random adds and subtractions', async (t) => {
  const rand = prng(99);
  const table = new RefTable(1);
  const model = new Map<string, [number, number]>();
  const keys: Buffer[] = [];
  for (let k = 0; k < 20000; k++) {
    const r = rand();
    if (r < 0.5 || !keys.length) {
      const d = keys.length && rand() < 0.5 ? keys[Math.floor(rand() * keys.length)]! : randomBytes(32);
      if (!keys.includes(d)) keys.push(d);
      const kind = rand() < 0.5 ? 0 : 1;
      const c = model.get(d.toString('hex')) ?? [0, 0];
      c[kind]++;
      model.set(d.toString('hex'), c);
      if (kind === 0) table.addPage(d);
      else table.addBlock(d);
    } else {
      const d = keys[Math.floor(rand() * keys.length)]!;
      const c = model.get(d.toString('hex')) ?? [0, 0];
      const kind = rand() < 0.5 ? 0 : 1;
      const got = code(() => (kind === 0 ? table.subPage(d) : table.subBlock(d)));
      if (c[kind] === 0) {
        if (got !== 'SV_ERR_STORE_CORRUPT_REFS') t.fail(`sub below zero: ${got}`);
      } else {
        c[kind]--;
        if (c[0] === 0 && c[1] === 0) model.delete(d.toString('hex'));
        else model.set(d.toString('hex'), c);
      }
    }
  }
  t.same([...table.toMap()].sort(), [...model].sort(), `${model.size} live digests agree (capacity grew to ${table.capacity})`);
});
