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
 * - Direct reads (`ref.direct`: a raw disk file under a copy-before-write view, src/hypervisor/qemu/): a
 *   range of DIRECT_MIN bytes or more is hashed and compressed by a worker reading the disk FILE itself (no
 *   NBD, no socket copy: an express full reads the whole disk). The guest keeps writing that file, but the
 *   copy-before-write filter saves a cluster's old bytes into the scratch node BEFORE any guest write
 *   reaches the file. So once the worker is done, the range is asked for on `direct.cowExport` (the scratch
 *   node, `qemu:allocation-depth`): depth 0 everywhere means nothing was saved, no write reached the range
 *   before or during the read, and the bytes read are the point in time's. Then a 4 KiB probe READ through
 *   the view proves the view still stands (on-cbw-error break-snapshot: a failed copy-before-write breaks
 *   the view, and its reads fail). Anything else (depth ≠ 0 anywhere, an error of the direct path) re-reads
 *   the range through NBD; an error of the direct path itself (file gone, another size) turns direct reads
 *   off for this source.
 * - `bytesTransferred` counts the data bytes received (READ payloads; a direct read counts its probe).
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

/** Ranges at least this big are read from the disk file when the reference allows it (see the header). */
export const DIRECT_MIN = 1024 * 1024;
const PROBE = 4096;

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
  /** Direct reads: the scratch node's allocation-depth connection (opened on first use), or off. */
  #cow: Promise<NbdClient> | null = null;
  #direct: boolean;
  /** Ranges served by direct reads, and those re-read through NBD after one (tests, diagnostics). */
  readonly directStats = { ranges: 0, reread: 0 };

  constructor(ref: NbdSourceRef, client: NbdClient) {
    this.ref = ref;
    this.#client = client;
    this.#allocation = client.contexts.includes(CONTEXT.BASE_ALLOCATION);
    this.#direct = ref.direct !== undefined;
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
    if (this.#direct && req.length >= DIRECT_MIN) {
      const res = await this.#directRange(req, signal);
      if (res) return res;
    }
    return this.#nbdRange(req, signal);
  }

  /** The range read from the disk file, or null when it must be read through NBD (see the header). */
  async #directRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult | null> {
    const direct = this.ref.direct!;
    let res: RangeResult;
    try {
      const old = req.oldDigests ? new Uint8Array(req.oldDigests) : null; // the task may take the buffer
      res = await runTask('storeBackupRange', { ...req, oldDigests: old, input: { kind: 'file', ref: { kind: 'file', path: direct.path, format: 'raw' } } }, { signal });
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#direct = false; // the file cannot be read here: NBD from now on
      return null;
    }
    if (!(await this.#untouched(req.offset, req.length))) {
      this.directStats.reread++;
      return null;
    }
    // The view still stands (a broken snapshot fails its reads): else the coded NBD error.
    await this.#client.readInto(req.offset, Buffer.allocUnsafe(Math.min(PROBE, req.length)));
    this.#transferred += Math.min(PROBE, req.length);
    this.directStats.ranges++;
    return res;
  }

  /** True when the scratch node holds nothing for [offset, offset+length): allocation depth 0 throughout. */
  async #untouched(offset: number, length: number): Promise<boolean> {
    const direct = this.ref.direct!;
    this.#cow ??= NbdClient.connect({ target: { path: this.ref.socket }, exportName: direct.cowExport, metaContexts: [CONTEXT.QEMU_ALLOCATION_DEPTH] });
    try {
      const cow = await this.#cow;
      for (let at = offset; at < offset + length;) {
        const extents = await cow.blockStatus(at, offset + length - at, CONTEXT.QEMU_ALLOCATION_DEPTH);
        for (const e of extents) if (e.flags !== 0 && e.offset < offset + length) return false;
        const last = extents[extents.length - 1]!;
        at = last.offset + last.length;
      }
      return true;
    } catch (err) {
      if (this.#closed) throw err;
      this.#direct = false; // no allocation information: NBD from now on
      return false;
    }
  }

  async #nbdRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult> {    // A buffer of its own (never the shared slab): it is transferred to the worker.
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
    const cow = this.#cow;
    this.#cow = null;
    await Promise.all([this.#client.close(), cow?.then((c) => c.close(), () => undefined)]);
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
