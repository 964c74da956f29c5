/**
 * Reading pack records through a backend's ranged reads (`getRange`), for stores that are not a local folder
 * (a folder store keeps the synchronous PackReader of pack.ts: one pread per span, no promise per block). Same
 * checks and errors as PackReader: a missing pack or a range past its end is SV_ERR_STORE_CORRUPT_PACK naming the
 * pack and offset; every record header is checked against the index entry.
 */
import { hasCode, SvError } from '../src/errors/index.js';
import { describeRef, sharedBackend } from './backend/open.js';
import type { BackendRef } from './backend/types.js';
import type { BlobLocation } from './index.js';
import { RECORD_HEADER_SIZE, packFileName } from './layout.js';
import { checkRecordHeader } from './pack.js';

export class BackendPackReader {
  /** Where the packs are, for messages. */
  readonly dir: string;
  readonly #ref: BackendRef;

  constructor(ref: BackendRef) {
    this.#ref = ref;
    this.dir = `${describeRef(ref).replace(/\/$/, '')}/packs`;
  }

  /** `length` bytes at `start` of a pack (records back to back). */
  async readSpan(packId: bigint, start: number, length: number): Promise<Buffer> {
    const key = `packs/${packFileName(packId)}`;
    const path = `${this.dir}/${packFileName(packId)}`;
    try {
      return await (await sharedBackend(this.#ref)).getRange(key, start, length);
    } catch (err) {
      if (hasCode(err, 'SV_ERR_BACKEND_NOT_FOUND')) throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path} named by the index does not exist`, { path }, { cause: err });
      if (hasCode(err, 'SV_ERR_BACKEND_SHORT_READ')) {
        throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path}: records at offset ${start} are cut short (expected ${length} bytes)`, { path, offset: start }, { cause: err });
      }
      throw err;
    }
  }

  /** Read the record (header + payload) of `loc`, check its header; returns the payload. */
  async read(digest: Uint8Array, loc: BlobLocation): Promise<Buffer> {
    const start = loc.offset - RECORD_HEADER_SIZE;
    const buf = await this.readSpan(loc.packId, start, RECORD_HEADER_SIZE + loc.storedLength);
    checkRecordHeader(buf, digest, loc, `${this.dir}/${packFileName(loc.packId)}`, start);
    return buf.subarray(RECORD_HEADER_SIZE);
  }

  close(): void {
    /* the backend is shared by the thread (sharedBackend) */
  }
}
