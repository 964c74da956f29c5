/**
 * A directory's $I30 index: a B+ tree of $FILE_NAME keys in NTFS collation order ($UpCase). The root node sits
 * in $INDEX_ROOT (resident); further nodes are INDX blocks in $INDEX_ALLOCATION, addressed by VCN (in clusters
 * when blocks are at least a cluster, else in 512-byte units), each with update-sequence fixups. An entry with
 * the "has child" flag ends with the VCN of the node holding the keys smaller than its own; the last entry of a
 * node has no key, only (maybe) a child. Listing walks the whole tree in order; lookup descends one path.
 * Defences: each block's own VCN is checked, a node reached twice is SV_ERR_FS_NTFS_LOOP, depth is bounded,
 * every entry length and key is checked inside its node (SV_ERR_FS_NTFS_BAD_INDEX).
 */
import { badInput } from '../../../errors/bad-input.js';
import { SvError } from '../../../errors/index.js';
import type { FileHandle } from '../types.js';
import type { NtfsFile } from './file.js';
import { applyFixups } from './fixups.js';
import { attributeHandle } from './handles.js';
import type { Mft } from './mft.js';
import {
  AT, FILE_NAME, INDEX_BLOCK_HEADER, INDEX_BLOCK_HEADER_AT, INDEX_BLOCK_MAGIC, INDEX_ENTRY, INDEX_ENTRY_HAS_CHILD,
  INDEX_ENTRY_LAST, INDEX_HEADER, INDEX_ROOT, INDEX_ROOT_HEADER_AT, mftRef, utf16,
} from './structs.js';
import { compareNames } from './upcase.js';

/** Deeper than any real tree (a 4 KiB-block tree of depth 16 holds far more than 2^32 names). */
const MAX_DEPTH = 32;
export const I30 = '$I30';

export interface IndexEntry {
  readonly record: number;
  readonly sequence: number;
  readonly name: string;
  readonly namespace: number;
  /** The $FILE_NAME key (parent, times, sizes as of the last index update). */
  readonly key: Buffer;
}

interface Node {
  readonly entries: IndexEntry[];
  /** children[i]: the sub-node before entries[i]; children[entries.length]: after the last key. */
  readonly children: Array<number | undefined>;
}

export class DirIndex {
  readonly #mft: Mft;
  readonly #record: number;
  readonly #root: Node;
  readonly #alloc: FileHandle | undefined;
  readonly #blockSize: number;
  readonly #vcnSize: number;
  readonly #up: Uint16Array;

  private constructor(mft: Mft, record: number, root: Node, alloc: FileHandle | undefined, blockSize: number, up: Uint16Array) {
    this.#mft = mft;
    this.#record = record;
    this.#root = root;
    this.#alloc = alloc;
    this.#blockSize = blockSize;
    this.#vcnSize = blockSize >= mft.geo.clusterSize ? mft.geo.clusterSize : 512;
    this.#up = up;
  }

  /** The $I30 index of `file`, or undefined when it has none (not a directory). */
  static of(mft: Mft, file: NtfsFile, up: Uint16Array): DirIndex | undefined {
    const rootAttr = file.attributes.find((a) => a.type === AT.INDEX_ROOT && a.name === I30);
    if (!rootAttr) return undefined;
    const at = mft.volumeOffset(file.record * mft.geo.recordSize);
    const bad = (what: string, expected: string | number, found: string | number) =>
      badInput('SV_ERR_FS_NTFS_BAD_INDEX', mft.name, `MFT record ${file.record} $INDEX_ROOT ${what}`, at, expected, found);
    const v = rootAttr.value;
    if (!v || v.length < INDEX_ROOT_HEADER_AT + INDEX_HEADER.size) throw bad('value', `a resident value of at least ${INDEX_ROOT_HEADER_AT + INDEX_HEADER.size} bytes`, v?.length ?? 'non-resident');
    const r = INDEX_ROOT.decode(v);
    if (r.indexedType !== AT.FILE_NAME) throw bad('indexed attribute type', '0x30 ($FILE_NAME)', `0x${r.indexedType.toString(16)}`);
    if (r.blockSize < 512 || r.blockSize > 65536 || (r.blockSize & (r.blockSize - 1)) !== 0) throw bad('index block size', 'a power of two in 512..65536', r.blockSize);
    const root = parseNode(v, INDEX_ROOT_HEADER_AT, v.length, (what, e, f) => bad(what, e, f));
    const allocAttr = file.attributes.find((a) => a.type === AT.INDEX_ALLOCATION && a.name === I30);
    const alloc = allocAttr ? attributeHandle(mft, file, allocAttr) : undefined;
    return new DirIndex(mft, file.record, root, alloc, r.blockSize, up);
  }

  /** Every entry of the tree, in collation order (DOS and Win32 names of one file are separate entries). */
  async all(): Promise<IndexEntry[]> {
    const out: IndexEntry[] = [];
    const seen = new Set<number>();
    const walk = async (node: Node, depth: number): Promise<void> => {
      for (let i = 0; i <= node.entries.length; i++) {
        const child = node.children[i];
        if (child !== undefined) await walk(await this.#block(child, seen, depth + 1), depth + 1);
        if (i < node.entries.length) out.push(node.entries[i]!);
      }
    };
    await walk(this.#root, 0);
    return out;
  }

  /** The entry named `name` (NTFS collation; an exact-case match is preferred among equal names). */
  async find(name: string): Promise<IndexEntry | undefined> {
    const seen = new Set<number>();
    let node = this.#root;
    for (let depth = 0; ; depth++) {
      let child: number | undefined;
      let i = 0;
      for (; i < node.entries.length; i++) {
        const e = node.entries[i]!;
        const c = compareNames(name, e.name, this.#up);
        if (c === 0) {
          for (let j = i; j < node.entries.length && compareNames(name, node.entries[j]!.name, this.#up) === 0; j++) {
            if (node.entries[j]!.name === name) return node.entries[j];
          }
          return e;
        }
        if (c < 0) break;
      }
      child = node.children[i];
      if (child === undefined) return undefined;
      node = await this.#block(child, seen, depth + 1);
    }
  }

  async #block(vcn: number, seen: Set<number>, depth: number): Promise<Node> {
    const mft = this.#mft;
    const structure = `MFT record ${this.#record} INDX block VCN ${vcn}`;
    if (seen.has(vcn)) {
      throw new SvError('SV_ERR_FS_NTFS_LOOP', `${mft.name}: ${structure}: the index tree reaches this node twice`, { path: mft.name, record: this.#record, vcn });
    }
    seen.add(vcn);
    if (depth > MAX_DEPTH) throw badInput('SV_ERR_FS_NTFS_TOO_LARGE', mft.name, `${structure} depth`, -1, `<= ${MAX_DEPTH}`, depth);
    const offset = vcn * this.#vcnSize;
    const bad = (what: string, expected: string | number, found: string | number) =>
      badInput('SV_ERR_FS_NTFS_BAD_INDEX', mft.name, `${structure} ${what}`, offset, expected, found);
    if (!this.#alloc) throw bad('$INDEX_ALLOCATION', 'an allocation for sub-nodes', 'none');
    if (!Number.isSafeInteger(offset) || offset + this.#blockSize > this.#alloc.size) throw bad('offset', `a block inside the ${this.#alloc.size}-byte $INDEX_ALLOCATION`, offset);
    // Our own copy: fixups are applied in place, and a handle's read may return the volume's buffer.
    const buf = Buffer.from(await this.#alloc.read(offset, this.#blockSize));
    const h = INDEX_BLOCK_HEADER.decode(buf);
    if (h.magic !== INDEX_BLOCK_MAGIC) throw bad('signature', JSON.stringify(INDEX_BLOCK_MAGIC), JSON.stringify(h.magic));
    applyFixups(buf, { name: mft.name, code: 'SV_ERR_FS_NTFS_BAD_INDEX', structure, at: offset });
    if (h.vcn !== vcn) throw bad('own VCN', vcn, h.vcn);
    return parseNode(buf, INDEX_BLOCK_HEADER_AT, buf.length, bad);
  }
}

type Bad = (what: string, expected: string | number, found: string | number) => SvError;

function parseNode(buf: Buffer, headerAt: number, limit: number, bad: Bad): Node {
  if (headerAt + INDEX_HEADER.size > limit) throw bad('index header', `${INDEX_HEADER.size} bytes`, limit - headerAt);
  const h = INDEX_HEADER.decode(buf, headerAt);
  const start = headerAt + h.entriesOffset;
  const end = headerAt + h.entriesEnd;
  if (h.entriesOffset < INDEX_HEADER.size || start > end || end > limit) throw bad('entries', `entries inside ${headerAt + INDEX_HEADER.size}..${limit}`, `${start}..${end}`);
  const entries: IndexEntry[] = [];
  const children: Array<number | undefined> = [];
  for (let p = start; ;) {
    if (p + INDEX_ENTRY.size > end) throw bad('last entry', 'an entry flagged last', `none before byte ${end}`);
    const E = INDEX_ENTRY.fields;
    const e = { length: buf.readUInt16LE(p + E.length.offset), keyLength: buf.readUInt16LE(p + E.keyLength.offset), flags: buf.readUInt16LE(p + E.flags.offset) };
    const hasChild = (e.flags & INDEX_ENTRY_HAS_CHILD) !== 0;
    const minLength = INDEX_ENTRY.size + (hasChild ? 8 : 0);
    if (e.length < minLength || e.length % 8 !== 0 || p + e.length > end) throw bad(`entry at ${p} length`, `${minLength}.. inside the node, a multiple of 8`, e.length);
    children.push(hasChild ? Number(buf.readBigUInt64LE(p + e.length - 8)) : undefined);
    if (e.flags & INDEX_ENTRY_LAST) break;
    if (e.keyLength < FILE_NAME.size || INDEX_ENTRY.size + e.keyLength > e.length - (hasChild ? 8 : 0)) {
      throw bad(`entry at ${p} key length`, `${FILE_NAME.size}..${e.length - minLength}`, e.keyLength);
    }
    const keyAt = p + INDEX_ENTRY.size;
    const nameLength = buf[keyAt + FILE_NAME.fields.nameLength.offset]!;
    if (FILE_NAME.size + 2 * nameLength > e.keyLength || nameLength === 0) throw bad(`entry at ${p} name length`, `1..${(e.keyLength - FILE_NAME.size) >> 1}`, nameLength);
    const ref = mftRef(buf, p + E.ref.offset);
    entries.push({
      record: ref.record, sequence: ref.sequence,
      name: utf16(buf, keyAt + FILE_NAME.size, nameLength),
      namespace: buf[keyAt + FILE_NAME.fields.namespace.offset]!,
      key: buf.subarray(keyAt, keyAt + e.keyLength),
    });
    p += e.length;
  }
  return { entries, children };
}
