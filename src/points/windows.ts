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
 */
export const WINDOW = 4 * 1024 * 1024;
const KEPT = 8;

/** Reads bytes [offset, offset+length) (block aligned) of the disk; null when all zero. */
export type ChunkReader = (offset: number, length: number) => Promise<Buffer | null>;

export class ReadWindows {
  readonly #read: ChunkReader;
  readonly #size: number;
  readonly #window: number;
  readonly #kept = new Map<number, Promise<Buffer | null>>();

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
    let p = this.#kept.get(n);
    if (p) {
      this.#kept.delete(n);
    } else {
      const start = n * this.#window;
      p = this.#read(start, Math.min(this.#window, this.#size - start));
      p.catch(() => this.#kept.delete(n));
      if (this.#kept.size >= KEPT) this.#kept.delete(this.#kept.keys().next().value!);
    }
    this.#kept.set(n, p);
    const data = await p;
    const at = offset - n * this.#window;
    return data ? data.subarray(at, at + length) : Buffer.alloc(length);
  }
}
