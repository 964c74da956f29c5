/**
 * gc's reference table: for every blob a recovery point names, how many references point at it, so that gc
 * reads only what changed since its last run (new points' new pages, deleted points' dead pages) instead of
 * every page of every point.
 *
 * Counts: a page's `pageRefs` is the number of disk roots and inner-page slots naming it; a blob's `blockRefs`
 * is the number of leaf-page slots naming it (the same digest twice in one leaf counts twice). The two are kept
 * apart because one blob can be both (a data block whose bytes happen to equal a page): its subtree is walked on
 * its page count alone. All-zero digests are never counted (nothing is stored for them).
 *
 * Layout: `<store>/gc-refs.bin` (offsets in layout.ts, REFS_*): a 64-byte header (magic, version, record size,
 * JSON length, record count, SHA-256 of the rest), a JSON body `{store, points: [{source, id, blockSize, fanout,
 * disks: [{root, virtualSize}]}]}` naming the point set the counts are for, then one 40-byte record per blob with
 * a non-zero count (digest, pageRefs u32, blockRefs u32), each digest once, in no particular order.
 *
 * Invariants: the records are exactly the reference counts of the listed points' trees. The file is a cache: it
 * is written only by gc (atomically: temp + fsync + rename) after it brought the counts up to date and before it
 * sweeps, so a blob it deletes has no record. A missing file, one that fails any check
 * (SV_ERR_STORE_CORRUPT_REFS), or one written for another store makes gc rebuild the table from every point (a
 * full mark); so does any count that would go below zero.
 *
 * Locking: read and written only by gc, under the gc lock (written under the commit lock too).
 *
 * Memory: an open-addressing hash table (linear probing on the digest's first 4 bytes, which BLAKE3 makes
 * uniform): 41 bytes per slot, at most 70% full: about 60 bytes per referenced blob.
 */
import { createHash } from 'node:crypto';
import { SvError } from '../src/errors/index.js';
import { isZeroDigest } from './codec.js';
import { DIGEST_SIZE, POINT_ID_RE, REFS_HEADER_SIZE, REFS_MAGIC, REFS_RECORD_SIZE, REFS_VERSION, SOURCE_NAME_RE } from './layout.js';

const MAX_LOAD = 0.7;
const WORDS = DIGEST_SIZE / 4;
const EMPTY = 0;
const USED = 1;

function refsError(path: string, what: string, details: Record<string, unknown> = {}): SvError {
  return new SvError('SV_ERR_STORE_CORRUPT_REFS', `gc reference table ${path}: ${what}`, { path, ...details });
}

/** Digest → (pageRefs, blockRefs). Digests are given as (buffer, offset) so leaf pages need no slicing. */
export class RefTable {
  #cap: number;
  /** Digests as 8 little-endian words per slot (word 0 is also the hash). */
  #keys: Uint32Array;
  #used: Uint8Array;
  #pages: Uint32Array;
  #blocks: Uint32Array;
  #size = 0;

  constructor(expected = 1024) {
    this.#cap = Math.max(64, Math.ceil(expected / MAX_LOAD) + 1);
    this.#keys = new Uint32Array(this.#cap * WORDS);
    this.#used = new Uint8Array(this.#cap);
    this.#pages = new Uint32Array(this.#cap);
    this.#blocks = new Uint32Array(this.#cap);
  }

  /** Slots in use (digests seen, including any whose counts dropped to zero during this run). */
  get slots(): number {
    return this.#size;
  }

  get capacity(): number {
    return this.#cap;
  }

  /** Slot of a digest, or -1. */
  find(d: Buffer, off = 0): number {
    const tag = d.readUInt32LE(off);
    const keys = this.#keys;
    for (let s = tag % this.#cap; ; s = s + 1 === this.#cap ? 0 : s + 1) {
      if (this.#used[s] === EMPTY) return -1;
      const k = s * WORDS;
      if (keys[k] !== tag) continue;
      let j = 1;
      while (j < WORDS && keys[k + j] === d.readUInt32LE(off + 4 * j)) j++;
      if (j === WORDS) return s;
    }
  }

  #slot(d: Buffer, off: number): number {
    const found = this.find(d, off);
    if (found >= 0) return found;
    if (this.#size + 1 > this.#cap * MAX_LOAD) this.#grow();
    const tag = d.readUInt32LE(off);
    let s = tag % this.#cap;
    while (this.#used[s] !== EMPTY) s = s + 1 === this.#cap ? 0 : s + 1;
    this.#used[s] = USED;
    for (let j = 0; j < WORDS; j++) this.#keys[s * WORDS + j] = d.readUInt32LE(off + 4 * j);
    this.#size++;
    return s;
  }

  #grow(): void {
    const old = { cap: this.#cap, keys: this.#keys, used: this.#used, pages: this.#pages, blocks: this.#blocks };
    this.#cap = Math.ceil(old.cap * 1.6);
    this.#keys = new Uint32Array(this.#cap * WORDS);
    this.#used = new Uint8Array(this.#cap);
    this.#pages = new Uint32Array(this.#cap);
    this.#blocks = new Uint32Array(this.#cap);
    this.#size = 0;
    const key = Buffer.alloc(DIGEST_SIZE);
    for (let s = 0; s < old.cap; s++) {
      if (old.used[s] === EMPTY || (old.pages[s] === 0 && old.blocks[s] === 0)) continue;
      for (let j = 0; j < WORDS; j++) key.writeUInt32LE(old.keys[s * WORDS + j]!, 4 * j);
      const n = this.#slot(key, 0);
      this.#pages[n] = old.pages[s]!;
      this.#blocks[n] = old.blocks[s]!;
    }
  }

  /** Add one page reference; returns the new page count (1: the page's children must be counted). */
  addPage(d: Buffer, off = 0): number {
    const s = this.#slot(d, off);
    return ++this.#pages[s]!;
  }

  addBlock(d: Buffer, off = 0): number {
    const s = this.#slot(d, off);
    return ++this.#blocks[s]!;
  }

  /** Drop one page reference; returns the new count (0: the page is dead, its children lose a reference). */
  subPage(d: Buffer, off = 0): number {
    const s = this.find(d, off);
    if (s < 0 || this.#pages[s] === 0) throw underflow(d, off, 'page');
    return --this.#pages[s]!;
  }

  subBlock(d: Buffer, off = 0): number {
    const s = this.find(d, off);
    if (s < 0 || this.#blocks[s] === 0) throw underflow(d, off, 'block');
    return --this.#blocks[s]!;
  }

  /** Whether the blob in slot `s` is referenced at all. */
  liveAt(s: number): boolean {
    return this.#pages[s] !== 0 || this.#blocks[s] !== 0;
  }

  pageRefs(d: Buffer, off = 0): number {
    const s = this.find(d, off);
    return s < 0 ? 0 : this.#pages[s]!;
  }

  blockRefs(d: Buffer, off = 0): number {
    const s = this.find(d, off);
    return s < 0 ? 0 : this.#blocks[s]!;
  }

  /** Number of blobs with a non-zero count. */
  liveCount(): number {
    let n = 0;
    for (let s = 0; s < this.#cap; s++) if (this.#used[s] !== EMPTY && this.liveAt(s)) n++;
    return n;
  }

  /** Records of the live blobs (digest, pageRefs, blockRefs), REFS_RECORD_SIZE bytes each. */
  encodeRecords(): Buffer {
    const out = Buffer.allocUnsafe(this.liveCount() * REFS_RECORD_SIZE);
    let o = 0;
    for (let s = 0; s < this.#cap; s++) {
      if (this.#used[s] === EMPTY || !this.liveAt(s)) continue;
      for (let j = 0; j < WORDS; j++) out.writeUInt32LE(this.#keys[s * WORDS + j]!, o + 4 * j);
      out.writeUInt32LE(this.#pages[s]!, o + 32);
      out.writeUInt32LE(this.#blocks[s]!, o + 36);
      o += REFS_RECORD_SIZE;
    }
    return out;
  }

  /** Live blobs as hex → [pageRefs, blockRefs] (tests compare tables with it). */
  toMap(): Map<string, [number, number]> {
    const m = new Map<string, [number, number]>();
    for (let s = 0; s < this.#cap; s++) {
      if (this.#used[s] === EMPTY || !this.liveAt(s)) continue;
      const key = Buffer.alloc(DIGEST_SIZE);
      for (let j = 0; j < WORDS; j++) key.writeUInt32LE(this.#keys[s * WORDS + j]!, 4 * j);
      m.set(key.toString('hex'), [this.#pages[s]!, this.#blocks[s]!]);
    }
    return m;
  }

  /** Insert a record read from the file (the digest must be new). */
  insertRecord(d: Buffer, off: number, pages: number, blocks: number): boolean {
    if (this.find(d, off) >= 0) return false;
    const s = this.#slot(d, off);
    this.#pages[s] = pages;
    this.#blocks[s] = blocks;
    return true;
  }
}

function underflow(d: Buffer, off: number, kind: string): SvError {
  const hex = d.toString('hex', off, off + DIGEST_SIZE);
  return new SvError('SV_ERR_STORE_CORRUPT_REFS', `gc reference table: ${kind} ${hex} would drop below zero references (the table does not match the points)`, { digest: hex, kind });
}

/** What the table's counts are for: one entry per recovery point (what gc needs to walk its trees again). */
export interface PointRefs {
  readonly source: string;
  readonly id: string;
  readonly blockSize: number;
  readonly fanout: number;
  readonly disks: ReadonlyArray<{ readonly root: string; readonly virtualSize: number }>;
}

export interface RefState {
  readonly store: string;
  /** Key `${source}/${id}`. */
  readonly points: Map<string, PointRefs>;
  readonly table: RefTable;
}

export function pointKey(source: string, id: string): string {
  return `${source}/${id}`;
}

export function emptyRefState(store: string): RefState {
  return { store, points: new Map(), table: new RefTable() };
}

export function encodeRefState(state: RefState): Buffer {
  const body = Buffer.from(JSON.stringify({ store: state.store, points: [...state.points.values()] }), 'utf8');
  const records = state.table.encodeRecords();
  const header = Buffer.alloc(REFS_HEADER_SIZE);
  header.write(REFS_MAGIC, 0, 'latin1');
  header.writeUInt32LE(REFS_VERSION, 8);
  header.writeUInt32LE(REFS_RECORD_SIZE, 12);
  header.writeBigUInt64LE(BigInt(body.length), 16);
  header.writeBigUInt64LE(BigInt(records.length / REFS_RECORD_SIZE), 24);
  createHash('sha256').update(body).update(records).digest().copy(header, 32);
  return Buffer.concat([header, body, records]);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function parsePoint(v: unknown, path: string, k: number): PointRefs {
  const bad = (what: string): SvError => refsError(path, `point ${k} of the body: ${what}`, { point: k });
  if (typeof v !== 'object' || v === null) throw bad('not an object');
  const p = v as Record<string, unknown>;
  if (typeof p.source !== 'string' || !SOURCE_NAME_RE.test(p.source)) throw bad('bad source name');
  if (typeof p.id !== 'string' || !POINT_ID_RE.test(p.id)) throw bad('bad point id');
  if (!isCount(p.blockSize) || !isCount(p.fanout)) throw bad('bad blockSize or fanout');
  if (!Array.isArray(p.disks)) throw bad('disks is not an array');
  const disks = p.disks.map((d: unknown, i: number) => {
    const r = d as { root?: unknown; virtualSize?: unknown } | null;
    if (typeof r !== 'object' || r === null || typeof r.root !== 'string' || !/^[0-9a-f]{64}$/.test(r.root)) throw bad(`disk ${i}: bad root digest`);
    if (typeof r.virtualSize !== 'number' || !Number.isSafeInteger(r.virtualSize) || r.virtualSize < 0) throw bad(`disk ${i}: bad virtualSize`);
    return { root: r.root, virtualSize: r.virtualSize };
  });
  return { source: p.source, id: p.id, blockSize: p.blockSize, fanout: p.fanout, disks };
}

/** Parse and check a whole gc-refs.bin (`path` names it in errors). */
export function parseRefState(buf: Buffer, path: string): RefState {
  if (buf.length < REFS_HEADER_SIZE) throw refsError(path, `${buf.length} bytes, shorter than the ${REFS_HEADER_SIZE}-byte header`, { size: buf.length });
  const magic = buf.toString('latin1', 0, 8);
  if (magic !== REFS_MAGIC) throw refsError(path, `magic at offset 0: expected ${REFS_MAGIC}, found ${JSON.stringify(magic)}`, { offset: 0 });
  const version = buf.readUInt32LE(8);
  if (version !== REFS_VERSION) throw refsError(path, `version at offset 8: expected ${REFS_VERSION}, found ${version}`, { offset: 8 });
  const recordSize = buf.readUInt32LE(12);
  if (recordSize !== REFS_RECORD_SIZE) throw refsError(path, `record size at offset 12: expected ${REFS_RECORD_SIZE}, found ${recordSize}`, { offset: 12 });
  const bodyLen = buf.readBigUInt64LE(16);
  const count = buf.readBigUInt64LE(24);
  const expected = BigInt(REFS_HEADER_SIZE) + bodyLen + count * BigInt(REFS_RECORD_SIZE);
  if (expected !== BigInt(buf.length)) {
    throw refsError(path, `size ${buf.length} does not match the header (body ${bodyLen} bytes at offset 16, ${count} records at offset 24: ${expected} bytes)`, { size: buf.length, expected: String(expected) });
  }
  const sum = createHash('sha256').update(buf.subarray(REFS_HEADER_SIZE)).digest();
  if (!sum.equals(buf.subarray(32, 64))) throw refsError(path, 'SHA-256 at offset 32 does not match the body and records', { offset: 32 });
  const bodyEnd = REFS_HEADER_SIZE + Number(bodyLen);
  let body: unknown;
  try {
    body = JSON.parse(buf.toString('utf8', REFS_HEADER_SIZE, bodyEnd));
  } catch (err) {
    throw refsError(path, `body at offset ${REFS_HEADER_SIZE} is not JSON (${(err as Error).message})`, { offset: REFS_HEADER_SIZE });
  }
  const b = body as { store?: unknown; points?: unknown } | null;
  if (typeof b !== 'object' || b === null || typeof b.store !== 'string' || !Array.isArray(b.points)) {
    throw refsError(path, `body at offset ${REFS_HEADER_SIZE}: expected {store, points[]}`, { offset: REFS_HEADER_SIZE });
  }
  const points = new Map<string, PointRefs>();
  b.points.forEach((v: unknown, k: number) => {
    const p = parsePoint(v, path, k);
    const key = pointKey(p.source, p.id);
    if (points.has(key)) throw refsError(path, `point ${key} is listed twice`, { point: key });
    points.set(key, p);
  });
  const n = Number(count);
  const table = new RefTable(n);
  for (let i = 0; i < n; i++) {
    const o = bodyEnd + i * REFS_RECORD_SIZE;
    const pages = buf.readUInt32LE(o + 32);
    const blocks = buf.readUInt32LE(o + 36);
    const at = { record: i, offset: o };
    if (isZeroDigest(buf, o)) throw refsError(path, `record ${i} at offset ${o}: the all-zero digest is never counted`, at);
    if (pages === 0 && blocks === 0) throw refsError(path, `record ${i} at offset ${o}: no references (dead blobs are not written)`, at);
    if (!table.insertRecord(buf, o, pages, blocks)) throw refsError(path, `record ${i} at offset ${o}: digest ${buf.toString('hex', o, o + 32)} appears twice`, at);
  }
  return { store: b.store, points, table };
}
