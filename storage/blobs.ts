/**
 * Reading blobs on the calling thread (index pages for backup, restore, gc, verify): index lookup, pack read
 * with record-header check, decompression with digest check. Bulk block reads go through worker tasks
 * (workers/store-task.ts) which use the same PackReader.
 */
import { SvError } from '../src/errors/index.js';
import { decodeBlob } from './codec.js';
import type { BlobIndex, BlobLocation } from './index.js';
import { PackReader } from './pack.js';
import type { PageReader } from './tree.js';

export class BlobReader {
  readonly index: BlobIndex;
  readonly #packs: PackReader;

  constructor(packsDir: string, index: BlobIndex) {
    this.index = index;
    this.#packs = new PackReader(packsDir);
  }

  locate(digest: Uint8Array): BlobLocation {
    const loc = this.index.lookup(digest);
    if (!loc) {
      const hex = Buffer.from(digest).toString('hex');
      throw new SvError('SV_ERR_STORE_MISSING_BLOB', `blob ${hex} is not in the store index (${this.index.dir})`, { digest: hex });
    }
    return loc;
  }

  read(digest: Uint8Array): Buffer {
    const loc = this.locate(digest);
    return decodeBlob(this.#packs.read(digest, loc), loc.flag, digest, loc.rawLength);
  }

  readonly readPage: PageReader = async (digest) => this.read(digest);

  close(): void {
    this.#packs.close();
  }
}
