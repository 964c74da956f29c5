/**
 * Read windows: mid-size reads (an NBD client's 256 KiB requests) served from WINDOW-aligned windows, each
 * decoded by ONE worker task and kept for the next reads. A sequential client then costs one task per window
 * instead of one per request: on the export server, posting tasks to the pool and collecting their buffers
 * (postMessage, garbage) cost more main-thread CPU than anything else (docs/BENCHMARKS.md, export section).
 *
 * Concurrent reads of one window share its single task (the map holds the promise). At most KEPT windows are
 * kept (least recently used first out): KEPT x WINDOW bytes (32 MiB). 4 MiB: 2 MiB windows cost the server
 * 1.92 CPU-s per GiB, 8 MiB 1.81; a random mid-size read decodes a whole window, so not larger. A read that crosses a window boundary
 * is not covered (the caller reads it the ordinary way). Returned buffers are views of the shared window:
 * read-only for the caller. A failed window read is dropped, so the next read tries again.
 *
 * Buffer reuse: a window's memory is handed to the reader again (ChunkReader `into`: the worker decodes into it)
 * once the window is evicted AND every read served from it was released (`release(view)`, called by the NBD
 * session once the reply carrying the view is written). A fresh 4 MiB buffer per window cost page faults in the
 * worker's preadv and garbage collection on the main thread. A caller that never releases only loses the reuse:
 * a window with an unreleased read is never reused.
 */
export const WINDOW = 4 * 1024 * 1024;
const KEPT = 8;
/** Free window buffers kept for reuse at most. */
const FREE_MAX = 4;

/**
 * Reads bytes [offset, offset+length) (block aligned) of the disk; null when all zero. `into`, when given, is
 * exactly `length` bytes the reader may decode into (and then return a view of); the caller gives it up.
 */
export type ChunkReader = (offset: number, length: number, into?: Buffer) => Promise<Buffer | null>;

interface Window {
  readonly data: Promise<Buffer | null>;
  /** The resolved full window buffer (set once `data` resolves to bytes). */
  buf: Buffer | null;
  /** Reads served from it and not released yet (including ones still awaiting `data`). */
  users: number;
  evicted: boolean;
}

export class ReadWindows {
  readonly #read: ChunkReader;
  readonly #size: number;
  readonly #window: number;
  readonly #kept = new Map<number, Window>();
  /** Window buffers by their ArrayBuffer, for release(). */
  readonly #owners = new Map<ArrayBufferLike, Window>();
  readonly #free: Buffer[] = [];

  /** `blockSize`: the store's block size (a window is a whole number of blocks, at least one). */
  constructor(read: ChunkReader, size: number, blockSize: number) {
    this.#read = read;
    this.#size = size;
    this.#window = Math.max(blockSize, Math.floor(WINDOW / blockSize) * blockSize);
  }

  /** Whether [offset, offset+length) lies inside one window. */
  covers(offset: number, length: number): boolean {
    return length > 0 && Math.floor(offset / this.#window) === Math.floor((offset + length - 1) / this.#window);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const n = Math.floor(offset / this.#window);
    let w = this.#kept.get(n);
    if (w) {
      this.#kept.delete(n);
    } else {
      w = this.#fetch(n);
      if (this.#kept.size >= KEPT) {
        const [oldest, old] = this.#kept.entries().next().value!;
        this.#kept.delete(oldest);
        old.evicted = true;
        this.#recycle(old);
      }
    }
    this.#kept.set(n, w);
    w.users++;
    let data: Buffer | null;
    try {
      data = await w.data;
    } catch (err) {
      w.users--;
      throw err;
    }
    if (!data) {
      w.users--;
      return Buffer.alloc(length);
    }
    const at = offset - n * this.#window;
    return data.subarray(at, at + length);
  }

  /** A view returned by read() is no longer used (its bytes are sent): its window's memory may be reused. */
  release(view: Buffer): void {
    const w = this.#owners.get(view.buffer);
    if (!w || w.users <= 0) return;
    w.users--;
    this.#recycle(w);
  }

  #fetch(n: number): Window {
    const start = n * this.#window;
    const length = Math.min(this.#window, this.#size - start);
    const into = length === this.#window ? this.#free.pop() : undefined;
    const w: Window = { data: this.#read(start, length, into), buf: null, users: 0, evicted: false };
    w.data.then(
      (data) => {
        if (!data) {
          if (into && this.#free.length < FREE_MAX) this.#free.push(into); // nothing decoded: still ours
          return;
        }
        w.buf = data;
        this.#owners.set(data.buffer, w);
        this.#recycle(w);
      },
      () => {
        if (this.#kept.get(n) === w) this.#kept.delete(n);
      },
    );
    return w;
  }

  /** Back to the free list when evicted, decoded and no read uses it. */
  #recycle(w: Window): void {
    if (!w.evicted || w.users > 0 || !w.buf) return;
    const buf = w.buf;
    w.buf = null;
    this.#owners.delete(buf.buffer);
    if (buf.length === this.#window && this.#free.length < FREE_MAX) this.#free.push(buf);
  }
}
