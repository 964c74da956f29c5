/**
 * Durable JSON documents for the appliance state.
 *
 * Layout: one file per collection (`<dir>/<name>.json`), the whole document each time.
 * Invariants: a reader sees either the previous or the new document, never a torn one: the new text is written
 * to `<name>.json.tmp-<pid>-<n>`, fsynced, renamed over the file, then the folder is fsynced so the rename
 * itself survives a power cut. Writes to one file are serialised in process (a promise chain); one appliance
 * process owns a state folder (the appliance takes `appliance.lock` at start, see state.ts).
 * Group commit: a write serialises the value as it is when the write begins, so saves asked while a write is
 * running share the one write queued after it (eight jobs starting together cost two writes, not eight
 * serialised temp + fsync + rename + fsync rounds). Each save still resolves only after a write that began
 * after it was asked.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SvError, wrapSystemError } from '../errors/index.js';
import { atomicWrite } from '../util/durable.js';

/** Write `text` to `path` atomically and durably (temp + fsync + rename + fsync folder), mode 0600. */
export async function writeFileDurable(path: string, text: string | Buffer, mode = 0o600): Promise<void> {
  await atomicWrite(path, text, mode);
}

/** One JSON document on disk with an in-memory copy; `save` persists the current value durably. */
export class JsonDocument<T> {
  readonly path: string;
  #value: T;
  #chain: Promise<void> = Promise.resolve();
  /** The write queued behind the running one, not begun yet: later saves join it. */
  #queued: Promise<void> | undefined;

  constructor(dir: string, name: string, initial: () => T) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${name}.json`);
    let text: string | undefined;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrapSystemError(err, `reading ${this.path}`);
    }
    if (text === undefined) {
      this.#value = initial();
    } else {
      try {
        this.#value = JSON.parse(text) as T;
      } catch (err) {
        throw new SvError('SV_ERR_APPLIANCE_STATE_CORRUPT', `appliance state file ${this.path} is not valid JSON: ${(err as Error).message}`, { path: this.path }, { cause: err });
      }
    }
  }

  get value(): T {
    return this.#value;
  }

  /** Replace the value in memory and persist it; resolves once it is durable. Saves are applied in order. */
  save(value: T = this.#value): Promise<void> {
    this.#value = value;
    if (this.#queued) return this.#queued;
    const run = this.#chain.then(() => {
      this.#queued = undefined; // from here on, a save needs the next write: this one has taken its value
      return writeFileDurable(this.path, `${JSON.stringify(this.#value, null, 1)}\n`);
    });
    this.#queued = run;
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Persist the current value now, without libuv's thread pool (whose threads a stuck system call may hold):
   * for a shutdown that cannot wait. Same temp + fsync + rename + folder fsync protocol as `save`.
   */
  saveSync(): void {
    const tmp = `${this.path}.tmp-${process.pid}-sync`;
    writeFileSync(tmp, `${JSON.stringify(this.#value, null, 1)}\n`, { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dir = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  /** Resolves when every save issued so far has finished. */
  flush(): Promise<void> {
    return this.#chain;
  }
}
