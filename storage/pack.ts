/**
 * Pack files: blobs (compressed blocks and index pages) appended one after another, so a backup does one
 * sequential stream of writes and one fsync per pack (PACK_TARGET_SIZE, 64 MiB) instead of a file and an fsync
 * per block. Format in layout.ts: a 32-byte header, then records (48-byte header + payload).
 *
 * Invariants: a pack is written only by the process that created it (its name is fresh random). On a folder
 * store it goes into a local staging file (`<id>.pack.tmp-<pid>-<random>` in the packs/ folder itself, so
 * publishing it is a link, i.e. a rename), then `backend.put('packs/<id>.pack', {file})`; on any other store it
 * is built in memory (pack-memory.ts) and put from there. The put makes it durable before any index segment
 * names it; never modified after that, only deleted by gc once no index segment names it. A pack that no
 * segment names is an orphan of a failed or killed backup, a staging file a leftover temporary; gc deletes both
 * (gc.ts, orphan rule).
 *
 * Reading: PackReader reads a folder store's packs synchronously (the fast path of restore and verify: one
 * pread per span, no promise per block); other backends are read through `Backend.getRange`.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, readvSync } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SvError, wrapSystemError } from '../src/errors/index.js';
import type { Backend, BackendRef } from './backend/types.js';
import { TMP_MARK } from './fsutil.js';
import type { BlobLocation } from './index.js';
import { DIGEST_SIZE, PACK_TARGET_SIZE, RECORD_HEADER_SIZE, RECORD_MAGIC, packFileName } from './layout.js';
import { packHeader, recordHeader } from './pack-format.js';
import { MemoryPack } from './pack-memory.js';
import { writeAllv } from '../src/util/durable.js';

import { Limit } from './backend/limit.js';

/**
 * Bytes per writev. Measured on the VM's ext4 (docs/BENCHMARKS.md): 1 MiB writes cost the kernel ~1.7 CPU-s
 * per full 4 GiB backup, 8 MiB writes ~4.6 CPU-s (the page-cache copy gets far slower with the larger calls).
 */
const FLUSH_BYTES = 1024 * 1024;

export function newPackId(): bigint {
  const hi = BigInt(Math.floor(Date.now() / 1000)) & 0xffffffffn;
  return (hi << 32n) | BigInt(randomBytes(4).readUInt32LE(0));
}

interface OpenPack {
  id: bigint;
  /** The staging file. */
  path: string;
  fh: FileHandle;
  size: number;
  written: number;
  pending: Buffer[];
  pendingBytes: number;
  /** The pack's writes, one after another (ext4 serialises writers of one file on its inode lock anyway). */
  tail: Promise<void>;
}

/** Closed packs being put into the backend at once (see PackWriter's #puts). */
const PUTS_IN_FLIGHT = 2;

/** Bytes handed to writes but not yet written, across the writer's packs, before append() waits. */
const MAX_QUEUED = 48 * 1024 * 1024;

/** writev all of `bufs` at `position`, continuing after partial writes. */

function aborted(): SvError {
  return new SvError('SV_ERR_CORE_CANCELLED', 'pack writer aborted (the job failed or was cancelled)', {});
}

/** The packs folder of a folder store (the fast read path and the staging folder), or undefined. */
export function localPacksDir(ref: BackendRef): string | undefined {
  return ref.kind === 'fs' ? join(ref.dir, 'packs') : undefined;
}

/**
 * Appends blobs to fresh packs; each full pack is put into the backend (`packs/<id>.pack`); `finish()` resolves
 * when every pack is stored. One writer per job. On a folder store a pack is a file staged in `stagingDir` (the
 * packs folder: put links it into place); on any other store it is built in memory and put from there
 * (pack-memory.ts: no staging file written and read back), at most PUTS_IN_FLIGHT closed packs waiting.
 */
export class PackWriter {
  readonly backend: Backend;
  readonly stagingDir: string;
  readonly targetSize: number;
  /** Every pack this writer created (finished or not). */
  readonly created: bigint[] = [];
  /** Packs stored in the backend. */
  readonly #stored = new Set<bigint>();
  bytesWritten = 0;
  #current: OpenPack | undefined;
  #closing: Promise<void>[] = [];
  /** Writes queued or running, oldest first, with their sizes (backpressure: MAX_QUEUED). */
  #queue: Array<{ done: Promise<void>; bytes: number }> = [];
  #queued = 0;
  /**
   * Puts of closed packs run PUTS_IN_FLIGHT at a time while the next pack fills: on object storage a put is
   * several round trips (create, parts, complete, checks) that a second upload overlaps.
   */
  readonly #puts = new Limit(PUTS_IN_FLIGHT);
  /** Set by abort(): later appends fail, and a pack opened meanwhile is removed at once. */
  #aborted = false;
  /** Packs are built in memory (not a folder store). */
  readonly #inMemory: boolean;
  #memory: MemoryPack | undefined;
  /** Puts of closed in-memory packs not yet known to be over, oldest first (settled, never rejecting). */
  #memoryPuts: Promise<void>[] = [];

  /** `stagingDir` defaults to the packs folder of a folder store (required for other backends). */
  constructor(backend: Backend, targetSize = PACK_TARGET_SIZE, stagingDir?: string) {
    this.backend = backend;
    this.targetSize = targetSize;
    const dir = stagingDir ?? localPacksDir(backend.ref);
    if (dir === undefined) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `${backend.location}: a pack writer needs a local staging folder`, {});
    this.stagingDir = dir;
    this.#inMemory = localPacksDir(backend.ref) === undefined;
  }

  /** Append one blob; resolves to where its payload will be once finish() resolved. */
  async append(digest: Uint8Array, flag: number, rawLength: number, payload: Uint8Array): Promise<BlobLocation> {
    if (digest.length !== DIGEST_SIZE) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `digest must be ${DIGEST_SIZE} bytes`, {});
    if (this.#aborted) throw aborted();
    if (this.#inMemory) return this.#appendInMemory(digest, flag, rawLength, payload);
    let p = this.#current;
    if (!p) p = this.#current = await this.#openNew();
    const offset = p.size + RECORD_HEADER_SIZE;
    p.pending.push(recordHeader(digest, payload.length, rawLength, flag), Buffer.from(payload.buffer, payload.byteOffset, payload.length));
    p.size += RECORD_HEADER_SIZE + payload.length;
    p.pendingBytes += RECORD_HEADER_SIZE + payload.length;
    this.bytesWritten += RECORD_HEADER_SIZE + payload.length;
    const loc: BlobLocation = { packId: p.id, offset, storedLength: payload.length, rawLength, flag };
    if (p.size >= this.targetSize) {
      this.#current = undefined;
      await this.#flush(p);
      if (this.#aborted) throw aborted(); // abort() closed and removed it meanwhile
      this.#closing.push(this.#close(p));
    } else if (p.pendingBytes >= FLUSH_BYTES) {
      await this.#flush(p);
    }
    if (this.#aborted) throw aborted();
    return loc;
  }

  async #appendInMemory(digest: Uint8Array, flag: number, rawLength: number, payload: Uint8Array): Promise<BlobLocation> {
    let p = this.#memory;
    if (!p) {
      p = this.#memory = new MemoryPack(newPackId(), this.targetSize);
      this.created.push(p.id);
    }
    const offset = p.append(digest, flag, rawLength, payload);
    this.bytesWritten += RECORD_HEADER_SIZE + payload.length;
    const loc: BlobLocation = { packId: p.id, offset, storedLength: payload.length, rawLength, flag };
    if (p.size >= this.targetSize) {
      this.#memory = undefined;
      this.#putInMemory(p);
      // Backpressure: at most PUTS_IN_FLIGHT closed packs held in memory while the next one fills.
      while (this.#memoryPuts.length > PUTS_IN_FLIGHT) await this.#memoryPuts.shift();
      if (this.#aborted) throw aborted();
    }
    return loc;
  }

  /** Put a closed in-memory pack (its buffer freed for the next pack once stored). */
  #putInMemory(p: MemoryPack): void {
    const put = this.#puts.run(async () => {
      if (this.#aborted) throw aborted();
      await this.backend.put(`packs/${packFileName(p.id)}`, p.bytes());
      this.#stored.add(p.id);
      p.release();
    });
    const over = put.then(() => undefined, () => undefined); // finish() reports the failure
    this.#memoryPuts.push(over);
    this.#closing.push(put);
  }

  /** Flush, fsync, close and store every pack. */
  async finish(): Promise<void> {
    const m = this.#memory;
    this.#memory = undefined;
    if (m) this.#putInMemory(m);
    const p = this.#current;
    this.#current = undefined;
    if (p) {
      await this.#flush(p);
      this.#closing.push(this.#close(p));
    }
    const closing = this.#closing;
    this.#closing = [];
    const results = await Promise.allSettled(closing);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Close and delete every pack this writer created (a failed job). Never throws. */
  async abort(): Promise<void> {
    this.#aborted = true;
    this.#memory = undefined;
    const p = this.#current;
    this.#current = undefined;
    if (p) {
      await p.tail.catch(() => undefined);
      await p.fh.close().catch(() => undefined);
    }
    await Promise.allSettled(this.#closing);
    for (const p of this.#staged) await rm(p, { force: true }).catch(() => undefined);
    for (const id of this.#stored) await this.backend.delete(`packs/${packFileName(id)}`).catch(() => undefined);
  }

  /** Staging files created (removed when stored or aborted). */
  readonly #staged = new Set<string>();

  async #openNew(): Promise<OpenPack> {
    if (!this.created.length) await mkdir(this.stagingDir, { recursive: true }).catch(() => undefined); // open() reports a real failure
    const id = newPackId();
    const path = join(this.stagingDir, `${packFileName(id)}${TMP_MARK}${process.pid}-${id.toString(16).slice(-6)}`);
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx');
    } catch (err) {
      throw wrapSystemError(err, `create pack ${path}`);
    }
    this.created.push(id);
    this.#staged.add(path);
    if (this.#aborted) {
      // abort() ran while this pack was being created: it is not in the list abort() removed.
      await fh.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw aborted();
    }
    const header = packHeader(id);
    return { id, path, fh, size: header.length, written: 0, pending: [header], pendingBytes: header.length, tail: Promise.resolve() };
  }

  /**
   * Queue the pending buffers as the pack's next write at their (precomputed) position; returns at once unless
   * more than MAX_QUEUED bytes are waiting to be written, so the coordinator keeps applying worker results (and
   * the workers keep busy) while the kernel copies the previous batch. A failed write fails every later
   * write of the pack, and the pack's close (finish() reports it).
   */
  async #flush(p: OpenPack): Promise<void> {
    if (!p.pending.length) return;
    const bufs = p.pending;
    const total = p.pendingBytes;
    p.pending = [];
    p.pendingBytes = 0;
    const position = p.written;
    p.written += total;
    const path = p.path;
    p.tail = p.tail.then(() => writeAllv(p.fh, bufs, position)).catch((err: unknown) => {
      throw wrapSystemError(err, `write pack ${path}`);
    });
    const entry = { done: p.tail.then(() => undefined, () => undefined), bytes: total };
    p.tail.catch(() => undefined);
    this.#queue.push(entry);
    this.#queued += total;
    while (this.#queued > MAX_QUEUED) {
      const oldest = this.#queue.shift()!;
      await oldest.done;
      this.#queued -= oldest.bytes;
    }
    // A write error surfaces here as soon as it is known (and again from finish()).
    await Promise.race([p.tail, Promise.resolve()]);
  }

  async #close(p: OpenPack): Promise<void> {
    const path = p.path;
    try {
      await p.tail; // no fsync here: put makes the object durable (FsBackend fsyncs the file it links)
    } catch (err) {
      throw wrapSystemError(err, `write pack ${path}`);
    } finally {
      await p.fh.close().catch(() => undefined);
    }
    await this.#puts.run(async () => {
      if (this.#aborted) throw aborted();
      await this.backend.put(`packs/${packFileName(p.id)}`, { file: path });
    });
    this.#stored.add(p.id);
    this.#staged.delete(path);
    await rm(path, { force: true }).catch(() => undefined); // a backend that copied it (fs moves it)
  }
}

/**
 * Synchronous reads of blob payloads (used on the main thread for pages and in worker threads for blocks).
 * Checks the record header in front of the payload against the expected digest and lengths.
 */
export class PackReader {
  readonly dir: string;
  #fds = new Map<bigint, number>();

  constructor(dir: string) {
    this.dir = dir;
  }

  #fd(packId: bigint): number {
    let fd = this.#fds.get(packId);
    if (fd === undefined) {
      if (this.#fds.size >= 64) this.close();
      const path = join(this.dir, packFileName(packId));
      try {
        // O_NONBLOCK: a FIFO planted under a pack's name cannot block the open; it is refused below.
        fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path} named by the index does not exist`, { path });
        }
        if (code === 'ELOOP' || code === 'ENXIO') throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path} named by the index is not a regular file`, { path });
        throw wrapSystemError(err, `open pack ${path}`);
      }
      if (!fstatSync(fd).isFile()) {
        closeSync(fd);
        throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path} named by the index is not a regular file`, { path });
      }
      this.#fds.set(packId, fd);
    }
    return fd;
  }

  /** Read the record (header + payload) of `loc`; returns the payload. */
  read(digest: Uint8Array, loc: BlobLocation, target?: Buffer): Buffer {
    const fd = this.#fd(loc.packId);
    const total = RECORD_HEADER_SIZE + loc.storedLength;
    const buf = target && target.length >= total ? target.subarray(0, total) : Buffer.allocUnsafe(total);
    const start = loc.offset - RECORD_HEADER_SIZE;
    let got = 0;
    while (got < total) {
      const n = readSync(fd, buf, got, total - got, start + got);
      if (n === 0) break;
      got += n;
    }
    const path = join(this.dir, packFileName(loc.packId));
    if (got < total) {
      throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path}: record at offset ${start} is cut short (expected ${total} bytes, file has ${got})`, { path, offset: start });
    }
    checkRecordHeader(buf, digest, loc, path, start);
    return buf.subarray(RECORD_HEADER_SIZE);
  }

  /**
   * Read `length` bytes at `start` of a pack in one call (records laid out back to back); the caller checks each
   * record with checkRecordHeader. Throws SV_ERR_STORE_CORRUPT_PACK when the pack is shorter.
   */
  readSpan(packId: bigint, start: number, length: number, target: Buffer): Buffer {
    const fd = this.#fd(packId);
    const buf = target.subarray(0, length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    if (got < length) {
      const path = join(this.dir, packFileName(packId));
      throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path}: records at offset ${start} are cut short (expected ${length} bytes, file has ${got})`, { path, offset: start });
    }
    return buf;
  }

  /**
   * Read `length` bytes at `start` of a pack with one preadv into `targets` (back to back: record headers and
   * payloads each into their own buffer, so stored-raw payloads land where they are wanted, uncopied). Returns
   * the bytes read: less than `length` only when the pack is shorter (the caller then reads again with
   * readSpan, which says where). At most 1,024 targets (IOV_MAX).
   */
  readSpanInto(packId: bigint, start: number, length: number, targets: Buffer[]): number {
    const fd = this.#fd(packId);
    let got = 0;
    let first = 0;
    let skip = 0; // bytes of targets[first] already filled
    while (got < length) {
      const bufs = skip ? [targets[first]!.subarray(skip), ...targets.slice(first + 1)] : first ? targets.slice(first) : targets;
      const n = readvSync(fd, bufs, start + got);
      if (n === 0) break;
      got += n;
      let left = n + skip;
      while (first < targets.length && left >= targets[first]!.length) left -= targets[first++]!.length;
      skip = left;
    }
    return got;
  }

  close(): void {
    for (const fd of this.#fds.values()) {
      try {
        closeSync(fd);
      } catch {
        /* ignore */
      }
    }
    this.#fds.clear();
  }
}

export function checkRecordHeader(buf: Buffer, digest: Uint8Array, loc: BlobLocation, path: string, offset: number): void {
  const magic = buf.readUInt32LE(44);
  const problems: string[] = [];
  if (magic !== RECORD_MAGIC) problems.push(`record magic 0x${magic.toString(16)} (expected 0x${RECORD_MAGIC.toString(16)})`);
  if (buf.compare(digest, 0, DIGEST_SIZE, 0, DIGEST_SIZE) !== 0) problems.push(`digest ${buf.subarray(0, 32).toString('hex')} (expected ${Buffer.from(digest).toString('hex')})`);
  if (buf.readUInt32LE(32) !== loc.storedLength) problems.push(`stored length ${buf.readUInt32LE(32)} (expected ${loc.storedLength})`);
  if (buf.readUInt32LE(36) !== loc.rawLength) problems.push(`raw length ${buf.readUInt32LE(36)} (expected ${loc.rawLength})`);
  if (buf.readUInt8(40) !== loc.flag) problems.push(`flag ${buf.readUInt8(40)} (expected ${loc.flag})`);
  if (problems.length) {
    throw new SvError('SV_ERR_STORE_CORRUPT_PACK', `pack ${path}: record at offset ${offset} has ${problems.join(', ')}`, { path, offset, digest: Buffer.from(digest).toString('hex') });
  }
}
