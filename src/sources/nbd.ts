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
 *   `backupSpans` (many small ranges: an incremental's dirty blocks, the short data runs of an express full)
 *   reads every span from the file in one worker task, whatever its size, then checks them all in ONE walk
 *   of the scratch node's allocation depth (the spans in offset order; one answer usually covers many) and
 *   sends ONE probe READ; only the spans with depth ≠ 0 are re-read through NBD.
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
/** Most bytes one allocation-depth BLOCK_STATUS asks about (a u32 on the wire; aligned). */
const STATUS_MAX = 1 << 30;

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
    return (await this.#touched([{ offset, length }]))?.size === 0;
  }

  /**
   * Indices of the spans the scratch node holds anything for (allocation depth ≠ 0 somewhere in the span: the
   * guest wrote there since the point in time), or null without allocation information (direct reads go off).
   * One walk in offset order: each BLOCK_STATUS asks from the next unknown byte of a span to the last span's
   * end, so one answer covers every span up to the guest's first write after them.
   */
  async #touched(spans: ReadonlyArray<{ readonly offset: number; readonly length: number }>): Promise<Set<number> | null> {
    const direct = this.ref.direct!;
    this.#cow ??= NbdClient.connect({ target: { path: this.ref.socket }, exportName: direct.cowExport, metaContexts: [CONTEXT.QEMU_ALLOCATION_DEPTH] });
    const order = spans.map((_, i) => i).sort((a, b) => spans[a]!.offset - spans[b]!.offset);
    const end = spans.reduce((n, s) => Math.max(n, s.offset + s.length), 0);
    const saved: Array<[number, number]> = []; // extents with depth ≠ 0, in offset order
    try {
      const cow = await this.#cow;
      let at = 0; // allocation known below this byte
      for (const i of order) {
        const s = spans[i]!;
        at = Math.max(at, s.offset);
        while (at < s.offset + s.length) {
          const extents = await cow.blockStatus(at, Math.min(end - at, STATUS_MAX), CONTEXT.QEMU_ALLOCATION_DEPTH);
          for (const e of extents) if (e.flags !== 0) saved.push([e.offset, e.offset + e.length]);
          const last = extents[extents.length - 1]!;
          at = last.offset + last.length;
        }
      }
    } catch (err) {
      if (this.#closed) throw err;
      this.#direct = false; // no allocation information: NBD from now on
      return null;
    }
    const touched = new Set<number>();
    let k = 0;
    for (const i of order) {
      const s = spans[i]!;
      while (k < saved.length && saved[k]![1] <= s.offset) k++;
      for (let j = k; j < saved.length && saved[j]![0] < s.offset + s.length; j++) {
        if (saved[j]![1] > s.offset) {
          touched.add(i);
          break;
        }
      }
    }
    return touched;
  }

  async #nbdRange(req: RangeRequest, signal?: AbortSignal): Promise<RangeResult> {    // A buffer of its own (never the shared slab): it is transferred to the worker.
    const bytes = await this.#client.readInto(req.offset, Buffer.allocUnsafeSlow(req.length));
    this.#transferred += req.length;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return runTask('storeBackupRange', { ...req, input: { kind: 'bytes', bytes: view } }, { signal, transfer: [bytes.buffer as ArrayBuffer] });
  }

  /** The spans from the disk file when the reference allows it (see the header), else through NBD. */
  async backupSpans(reqs: readonly RangeRequest[], signal?: AbortSignal): Promise<RangeResult[]> {
    this.#check('backupSpans');
    for (const req of reqs) checkRange(req, this.info.virtualSize, this.info.path);
    if (this.#direct && reqs.length > 0) {
      const res = await this.#directSpans(reqs, signal);
      if (res) return res;
    }
    return this.#nbdSpans(reqs, signal);
  }

  /** The spans read from the disk file, those the guest wrote since re-read through NBD; null: all through NBD. */
  async #directSpans(reqs: readonly RangeRequest[], signal?: AbortSignal): Promise<RangeResult[] | null> {
    let results: RangeResult[];
    try {
      const spans = reqs.map((r) => ({ ...r, oldDigests: r.oldDigests ? new Uint8Array(r.oldDigests) : null })); // the task may take them
      ({ results } = await runTask('storeBackupSpans', { spans, input: { kind: 'file', ref: { kind: 'file', path: this.ref.direct!.path, format: 'raw' } } }, { signal }));
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#direct = false; // the file cannot be read here: NBD from now on
      return null;
    }
    const touched = await this.#touched(reqs);
    if (!touched) return null;
    // The view still stands (a broken snapshot fails its reads): else the coded NBD error.
    const probe = Math.min(PROBE, reqs[0]!.length);
    await this.#client.readInto(reqs[0]!.offset, Buffer.allocUnsafe(probe));
    this.#transferred += probe;
    if (touched.size) {
      const again = [...touched].sort((a, b) => a - b);
      const reread = await this.#nbdSpans(again.map((i) => reqs[i]!), signal);
      again.forEach((i, j) => (results[i] = reread[j]!));
    }
    this.directStats.ranges += reqs.length - touched.size;
    this.directStats.reread += touched.size;
    return results;
  }

  /** The spans read through NBD into one buffer (all requests in flight at once), then one worker task. */
  async #nbdSpans(reqs: readonly RangeRequest[], signal?: AbortSignal): Promise<RangeResult[]> {
    let total = 0;
    for (const req of reqs) total += req.length;
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
