/** A counting semaphore: at most `n` callers of `run` inside at once, the rest wait in arrival order. */
export class Limit {
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  constructor(readonly n: number) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`a limit needs n ≥ 1, not ${n}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.n) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next(); // hands the slot over: #active stays the same
      else this.#active--;
    }
  }
}
