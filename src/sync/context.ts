/**
 * What one backup run accumulates before its commit: the pack writer, the new index entries, the blobs it
 * reused from other sources/points (which a concurrent gc could have swept: checked at commit), counters.
 */
import { hash } from '../native/index.js';
import type { BlobIndex, BlobLocation, IndexEntry } from '../../storage/index.js';
import { COMPRESSION_LEVEL, FLAG_ZERO } from '../../storage/layout.js';
import type { PackWriter } from '../../storage/pack.js';
import { encodeBlob } from '../../storage/codec.js';

export interface ForeignReuse {
  readonly disk: number;
  readonly block: number;
  readonly digest: Buffer;
}

export class BackupContext {
  readonly writer: PackWriter;
  /** The index as loaded at the start (replaced by a fresh one when a concurrent gc swept). */
  index: BlobIndex;
  readonly bad: ReadonlySet<string>;
  readonly pending = new Map<string, BlobLocation>();
  readonly entries: IndexEntry[] = [];
  readonly foreign: ForeignReuse[] = [];
  readonly repaired = new Set<string>();
  bytesRead = 0;
  bytesChanged = 0;
  bytesNew = 0;
  blocksChanged = 0;
  blocksNew = 0;
  blocksZero = 0;
  pagesWritten = 0;

  /** Consistency check: a blob only counts as stored when its pack exists too (the packs listed at the start). */
  readonly strict: boolean;
  readonly #packs: ReadonlySet<bigint>;

  constructor(writer: PackWriter, index: BlobIndex, bad: ReadonlySet<string>, strictPacks?: ReadonlySet<bigint>) {
    this.writer = writer;
    this.index = index;
    this.bad = bad;
    this.strict = strictPacks !== undefined;
    this.#packs = strictPacks ?? new Set();
  }

  #inStore(digest: Buffer): boolean {
    if (!this.strict) return this.index.has(digest);
    const loc = this.index.lookup(digest);
    if (!loc) return false;
    return this.#packs.has(loc.packId);
  }

  /** Is this digest stored and good (or written by this run)? */
  isStored(digest: Buffer, hex = digest.toString('hex')): boolean {
    return this.pending.has(hex) || (!this.bad.has(hex) && this.#inStore(digest));
  }

  /** Record a block a worker packed: dedup against this run and the store, else append it to a pack. */
  async putBlock(disk: number, block: number, digest: Buffer, flag: number, rawLength: number, payload: Uint8Array): Promise<void> {
    const hex = digest.toString('hex');
    if (this.pending.has(hex)) return;
    if (!this.bad.has(hex) && this.#inStore(digest)) {
      this.foreign.push({ disk, block, digest: Buffer.from(digest) });
      return;
    }
    await this.#append(digest, hex, flag, rawLength, payload);
    if (this.bad.has(hex) || this.index.has(digest)) this.repaired.add(hex);
    this.bytesNew += rawLength;
    this.blocksNew++;
  }

  /** Write an index page (not all zero); returns its digest. Pages dedup only within this run. */
  readonly putPage = async (page: Buffer): Promise<Buffer> => {
    const { digest, written } = await this.putOwn(page);
    if (written) this.pagesWritten++;
    return digest;
  };

  /**
   * Write a blob this run holds the bytes of (index pages, configuration files' blocks): deduplicated within
   * this run only, so a concurrent gc can never have swept it (no re-read at commit); all-zero bytes are not
   * stored (the zero digest). Returns the digest and whether it was appended.
   */
  async putOwn(raw: Buffer): Promise<{ digest: Buffer; written: boolean }> {
    const blob = encodeBlob(raw, COMPRESSION_LEVEL);
    const hex = blob.digest.toString('hex');
    if (blob.flag === FLAG_ZERO || this.pending.has(hex)) return { digest: blob.digest, written: false };
    await this.#append(blob.digest, hex, blob.flag, raw.length, blob.payload);
    if (this.bad.has(hex)) this.repaired.add(hex);
    return { digest: blob.digest, written: true };
  }

  async #append(digest: Buffer, hex: string, flag: number, rawLength: number, payload: Uint8Array): Promise<void> {
    const loc = await this.writer.append(digest, flag, rawLength, payload);
    this.pending.set(hex, loc);
    this.entries.push({ ...loc, digest: Buffer.from(digest) });
  }
}

export function digestHex(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('hex');
}

export { hash };
