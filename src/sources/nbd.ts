/**
 * The `nbd` disk source: an export of an NBD server on a unix socket (QEMU's own NBD server exporting a
 * point-in-time view; `qemu-nbd --read-only` or qemu-storage-daemon for a stopped VM's qcow2), read as raw
 * bytes through src/nbd's client.
 *
 * - One connection per open source (servers such as `qemu-nbd` accept one client unless told otherwise), with
 *   many requests in flight. `extents` walks `base:allocation` (ZERO+HOLE → unallocated, ZERO → zero, else
 *   data); a server that does not offer it reads as all data.
 * - `backupRange` reads the range on this thread and hands the bytes to the worker task storeBackupRange
 *   (transferred, not copied), which hashes and compresses them like a file's: same digests, same payload.
 *   Letting each worker open its own connection instead would need servers that accept pool-size + 1
 *   clients; the read here is a socket copy, the hashing and compression stay on the pool.
 * - `bytesTransferred` counts the data bytes received (READ payloads).
 * - Errors: SV_ERR_NBD_* from the client (the server went away: SV_ERR_NBD_CLOSED, never zeros),
 *   SV_ERR_SOURCE_BAD_RANGE / SV_ERR_FORMAT_READ_RANGE for bad ranges, SV_ERR_SOURCE_CLOSED after close.
 */
import { SvError, hasCode } from '../errors/index.js';
import { checkReadRange, ExtentBuilder } from '../formats/common.js';
import type { DiskInfo, Extent } from '../formats/types.js';
import { NbdClient } from '../nbd/client.js';
import { walkExtents } from '../nbd/extents.js';
import { CONTEXT, STATE } from '../nbd/protocol.js';
import { runTask } from '../pool/index.js';
import { checkRange } from './range.js';
import type { DiskSource, NbdSourceRef, RangeRequest, RangeResult } from './types.js';

/** A name for messages and DiskInfo.path: the NBD URI of the export. */
export function nbdUri(ref: NbdSourceRef): string {
  return `nbd+unix:///${encodeURIComponent(ref.exportName)}?socket=${ref.socket}`;
}

class NbdSource implements DiskSource {
  readonly ref: NbdSourceRef;
  readonly info: DiskInfo;
  readonly #client: NbdClient;
  readonly #allocation: boolean;
  #transferred = 0;
  #closed = false;

  constructor(ref: NbdSourceRef, client: NbdClient) {
    this.ref = ref;
    this.#client = client;
    this.#allocation = client.contexts.includes(CONTEXT.BASE_ALLOCATION);
    const sector = Math.max(512, client.blockSizes.minimum);
    this.info = {
      path: nbdUri(ref), format: 'raw', variant: 'fixed', virtualSize: client.size, logicalSectorSize: sector, physicalSectorSize: Math.max(sector, client.blockSizes.preferred),
      blockSize: 1 << 20, extra: { socket: ref.socket, exportName: ref.exportName, contexts: client.contexts, maxRequestBytes: client.maxRequestBytes },
    };
  }

  get bytesTransferred(): number {
    return this.#transferred;
  }

  #check(what: string): void {
    if (this.#closed) throw new SvError('SV_ERR_SOURCE_CLOSED', `${this.info.path}: ${what} after close`, { source: this.info.path });
  }

  async extents(): Promise<Extent[]> {
    this.#check('extents');
    const size = this.info.virtualSize;
    if (!this.#allocation) return size > 0 ? [{ offset: 0, length: size, kind: 'data' }] : [];
    const out = new ExtentBuilder();
    for await (const e of walkExtents(this.#client, CONTEXT.BASE_ALLOCATION)) {
      const zero = (e.flags & STATE.ZERO) !== 0;
      out.push(e.offset, e.length, zero && (e.flags & STATE.HOLE) !== 0 ? 'unallocated' : zero ? 'zero' : 'data');
    }
    return out.done();
  }

  async read(offset: number, length: number, target?: Buffer): Promise<Buffer> {
    this.#check('read');
    checkReadRange(this.info.path, this.info.virtualSize, offset, length, target);
    if (length === 0) return target ? target.subarray(0, 0) : Buffer.alloc(0);
    const out = await this.#client.readInto(offset, target ? target.subarray(0, length) : Buffer.allocUnsafe(length));
    this.#transferred += length;
    return out;
  }

  async backupRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult> {
    this.#check('backupRange');
    checkRange(req, this.info.virtualSize, this.info.path);
    // A buffer of its own (never the shared slab): it is transferred to the worker.
    const bytes = await this.#client.readInto(req.offset, Buffer.allocUnsafeSlow(req.length));
    this.#transferred += req.length;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return runTask('storeBackupRange', { ...req, input: { kind: 'bytes', bytes: view } }, { signal, transfer: [bytes.buffer as ArrayBuffer] });
  }

  /** The spans read into one buffer (all requests in flight at once), then one worker task. */
  async backupSpans(reqs: readonly RangeRequest[], signal?: AbortSignal): Promise<RangeResult[]> {
    this.#check('backupSpans');
    let total = 0;
    for (const req of reqs) {
      checkRange(req, this.info.virtualSize, this.info.path);
      total += req.length;
    }
    const bytes = Buffer.allocUnsafeSlow(total);
    let at = 0;
    await Promise.all(reqs.map((req) => {
      const target = bytes.subarray(at, at + req.length);
      at += req.length;
      return this.#client.readInto(req.offset, target);
    }));
    this.#transferred += total;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { results } = await runTask('storeBackupSpans', { spans: reqs, input: { kind: 'bytes', bytes: view } }, { signal, transfer: [bytes.buffer as ArrayBuffer] });
    return results;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.close();
  }
}

export async function openNbdSource(ref: NbdSourceRef): Promise<DiskSource> {
  const connect = (metaContexts: string[]): Promise<NbdClient> => NbdClient.connect({ target: { path: ref.socket }, exportName: ref.exportName, metaContexts });
  let client: NbdClient;
  try {
    client = await connect([CONTEXT.BASE_ALLOCATION]);
  } catch (err) {
    if (!hasCode(err, 'SV_ERR_NBD_NO_META_CONTEXT', 'SV_ERR_NBD_UNSUPPORTED')) throw err;
    client = await connect([]); // no allocation information: every byte is read
  }
  return new NbdSource(ref, client);
}
