/**
 * Reading pack records through a backend's ranged reads (`getRange`), for stores that are not a local folder
 * (a folder store keeps the synchronous PackReader of pack.ts: one pread per span, no promise per block). Same
 * checks and errors as PackReader: a missing pack or a range past its end is SV_ERR_STORE_CORRUPT_PACK naming the
 * pack and offset; every record header is checked against the index entry.
 *
 * Speed on object storage: one GET streams at a fraction of what the server gives to several, so a span longer
 * than READ_PART (2 MiB: a restore chunk of random data is one 8 MiB span) is read as parts of READ_PART with
 * ranged GETs all in flight at once (the backend bounds how many it sends: S3Backend's getConcurrency), and
 * the worker task asks for all of its spans before it decodes the first (workers/store-task.ts).
 */
import { hasCode, SvError } from '../src/errors/index.js';
import { describeRef, sharedBackend } from './backend/open.js';
import type { BackendRef } from './backend/types.js';
import type { BlobLocation } from './index.js';
import { RECORD_HEADER_SIZE, packFileName } from './layout.js';
import { checkRecordHeader } from './pack.js';

/** Parts a long span is read as (see the top comment). */
export const READ_PART = 2 * 1024 * 1024;

export class BackendPackReader {
  /** Where the packs are, for messages. */
  readonly dir: string;
  readonly #ref: BackendRef;

  constructor(ref: BackendRef) {
    this.#ref = ref;
    this.dir = `${describeRef(ref).replace(/\/$/, '')}/packs`;
  }

  /** `length` bytes at `start` of a pack (records back to back); long spans as parallel ranged reads. */
  async readSpan(packId: bigint, start: number, length: number): Promise<Buffer> {
    const key = `packs/${packFileName(packId)}`;
    const path = `${this.dir}/${packFileName(packId)}`;
    try {
      const backend = await sharedBackend(this.#ref);
      if (length <= READ_PART * 1.5) return await backend.getRange(key, start, length);
      const parts: Promise<Buffer>[] = [];
      for (let at = 0; at < length; at += READ_PART) parts.push(backend.getRange(key, start + at, Math.min(READ_PART, length - at)));
      for (const p of parts) p.catch(() => undefined); // each is awaited below; the first failure is thrown
      const out = Buffer.allocUnsafe(length);
      let at = 0;
      for (const p of parts) {
        const b = await p;
        b.copy(out, at);
        at += b.length;
      }
      return out;
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
