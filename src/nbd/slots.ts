/**
 * A counting limit on what is in flight: `acquire(failed, n)` waits until `n` units are free (requests for
 * the client, bytes for the server), `release(n)` frees them, `drain()` waits until none is in use, `fail()`
 * wakes every waiter (the caller then sees the failure). Waiters are served in order (no starvation of a
 * large request by small ones). A request for more than the whole size waits for an empty pool and then
 * takes it all (the caller caps what it asks for).
 */
export class Slots {
  #free: number;
  #size: number;
  #waiters: { n: number; wake: () => void }[] = [];
  #drained: (() => void)[] = [];

  /** `size` is checked by the caller (NbdConnectOptions validation, server limits). */
  constructor(size: number) {
    this.#free = size;
    this.#size = size;
  }

  get inUse(): number {
    return this.#size - this.#free;
  }

  /** Take `n` units; resolves at once when `failed()` reports a failure (the caller must check and release). */
  acquire(failed: () => unknown, n = 1): Promise<void> {
    const take = Math.min(n, this.#size);
    if ((this.#waiters.length === 0 && this.#free >= take) || failed()) {
      this.#free -= take;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#waiters.push({
        n: take,
        wake: () => {
          this.#free -= take;
          resolve();
        },
      });
    });
  }

  release(n = 1): void {
    this.#free += Math.min(n, this.#size);
    while (this.#waiters.length > 0 && this.#free >= this.#waiters[0]!.n) this.#waiters.shift()!.wake();
    if (this.#waiters.length === 0 && this.#free >= this.#size) for (const d of this.#drained.splice(0)) d();
  }

  /** Wake all waiters (they take their units and find the connection failed). */
  fail(): void {
    for (const w of this.#waiters.splice(0)) w.wake();
  }

  drain(): Promise<void> {
    if (this.#free >= this.#size && this.#waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }
}
