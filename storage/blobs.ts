/**
 * Reading blobs on the calling thread (index pages for backup, restore, gc, verify): index lookup, pack read
 * with record-header check, decompression with digest check. Bulk block reads go through worker tasks
 * (workers/store-task.ts) which use the same PackReader.
 */
import { hasCode, SvError } from '../src/errors/index.js';
import { decodeBlob } from './codec.js';
import type { BlobIndex, BlobLocation } from './index.js';
import type { BackendRef } from './backend/types.js';
import { BackendPackReader } from './pack-backend.js';
import { localPacksDir, PackReader } from './pack.js';
import type { PageReader } from './tree.js';

export class BlobReader {
  index: BlobIndex;
  /** A folder store's packs (synchronous reads), else reads through the backend. */
  readonly #packs: PackReader | BackendPackReader;
  readonly #reload: (() => Promise<BlobIndex>) | undefined;

  /**
   * `reload`, when given, yields a fresh index: a page whose pack vanished or whose entry is gone (a concurrent
   * gc repacked it) is looked up once more in it before the error is reported.
   */
  constructor(store: BackendRef, index: BlobIndex, reload?: () => Promise<BlobIndex>) {
    this.index = index;
    const local = localPacksDir(store);
    this.#packs = local !== undefined ? new PackReader(local) : new BackendPackReader(store);
    this.#reload = reload;
  }

  locate(digest: Uint8Array): BlobLocation {
    const loc = this.index.lookup(digest);
    if (!loc) {
      const hex = Buffer.from(digest).toString('hex');
      throw new SvError('SV_ERR_STORE_MISSING_BLOB', `blob ${hex} is not in the store index (${this.index.dir})`, { digest: hex });
    }
    return loc;
  }

  async read(digest: Uint8Array): Promise<Buffer> {
    const loc = this.locate(digest);
    return decodeBlob(await this.#packs.read(digest, loc), loc.flag, digest, loc.rawLength);
  }

  readonly readPage: PageReader = async (digest) => {
    try {
      return await this.read(digest);
    } catch (err) {
      if (!this.#reload || !hasCode(err, 'SV_ERR_STORE_CORRUPT_PACK', 'SV_ERR_STORE_MISSING_BLOB')) throw err;
      this.#packs.close();
      this.index = await this.#reload();
      return this.read(digest);
    }
  };

  close(): void {
    this.#packs.close();
  }
}
