/**
 * Subtests of one file that run at once (t.jobs) share this process's worker pool (src/pool). An in-process CLI
 * command (test/helpers/cli.ts) ends with closePool(), as the real process does before it exits, and that fails
 * the tasks another subtest has queued meanwhile ("worker task ... could not run: the pool was shut down").
 * PoolGuard orders them: library calls that use the pool (backup, verify, restore) take it shared, in-process CLI
 * commands exclusive. FIFO: a waiting exclusive holder stops later shared ones from starving it.
 */
export class PoolGuard {
  #shared = 0;
  #exclusive = false;
  readonly #queue: Array<{ exclusive: boolean; grant: () => void }> = [];

  /** Run `fn` alongside other shared holders, never while an exclusive one runs. */
  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.#run(false, fn);
  }

  /** Run `fn` alone. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#run(true, fn);
  }

  async #run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((grant) => {
      this.#queue.push({ exclusive, grant });
      this.#pump();
    });
    try {
      return await fn();
    } finally {
      if (exclusive) this.#exclusive = false;
      else this.#shared--;
      this.#pump();
    }
  }

  #pump(): void {
    while (this.#queue.length && !this.#exclusive) {
      const next = this.#queue[0]!;
      if (next.exclusive && this.#shared > 0) return;
      this.#queue.shift();
      if (next.exclusive) this.#exclusive = true;
      else this.#shared++;
      next.grant();
    }
  }
}
