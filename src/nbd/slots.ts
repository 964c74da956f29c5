/**
 * A counting limit on requests in flight: `acquire()` waits for a free slot, `release()` frees one,
 * `drain()` waits until none is in use, `fail()` wakes every waiter (the caller then sees the failure).
 */
export class Slots {
  #free: number;
  #size: number;
  #waiters: (() => void)[] = [];
  #drained: (() => void)[] = [];

  /** `size` is checked by the caller (NbdConnectOptions validation). */
  constructor(size: number) {
    this.#free = size;
    this.#size = size;
  }

  /** Take a slot; resolves at once when `failed()` reports a failure (the caller must check and release). */
  acquire(failed: () => unknown): Promise<void> {
    if (this.#free > 0 || failed()) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#waiters.push(() => {
        this.#free--;
        resolve();
      });
    });
  }

  release(): void {
    this.#free++;
    const next = this.#waiters.shift();
    if (next) next();
    else if (this.#free >= this.#size) for (const d of this.#drained.splice(0)) d();
  }

  /** Wake all waiters (they take a slot and find the connection failed). */
  fail(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  drain(): Promise<void> {
    if (this.#free >= this.#size && this.#waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }
}
