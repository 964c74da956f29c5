/**
 * The QMP sockets the driver is told about (paths or globs, re-expanded on every listVms so new VMs are
 * picked up) and one QmpClient per socket, reconnected when the socket comes back.
 *
 * Globs: `*` and `?` in any path component (no `**`, no braces); a pattern without them is a plain path and is
 * kept even when it does not exist yet (its VM is then reported from the state file, or not at all).
 */
import { readdirSync } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { SvError, hasCode } from '../../errors/index.js';
import { ENDED, QmpClient } from '../../qemu/qmp.js';

const GLOB_CHARS = /[*?]/u;

function globToRegExp(component: string): RegExp {
  const body = component.replace(/[.+^${}()|[\]\\]/gu, '\\$&').replace(/\*/gu, '[^/]*').replace(/\?/gu, '[^/]');
  return new RegExp(`^${body}$`, 'u');
}

/** Every existing path a pattern names (sorted); a plain path is returned as it is. */
export function expandPattern(pattern: string): string[] {
  const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
  if (!GLOB_CHARS.test(abs)) return [abs];
  let found: string[] = [sep];
  for (const part of abs.split(sep).filter(Boolean)) {
    const next: string[] = [];
    for (const dir of found) {
      if (!GLOB_CHARS.test(part)) {
        next.push(join(dir, part));
        continue;
      }
      const re = globToRegExp(part);
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      for (const e of entries) if (re.test(e) && !e.startsWith('.')) next.push(join(dir, e));
    }
    found = next;
  }
  return found.sort();
}

/** Whether `path` is named by `pattern` (whether or not it exists now). */
export function matchesPattern(path: string, pattern: string): boolean {
  const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
  return GLOB_CHARS.test(abs) ? globToRegExp(abs).test(path) : abs === path;
}

/**
 * The sockets to look at: every existing path the patterns name, plus `known` ones the patterns name that
 * are gone now (QEMU removes its socket when it quits: its VM is then listed as stopped).
 */
export function expandSockets(patterns: readonly string[], known: readonly string[] = []): string[] {
  const found = new Set(patterns.flatMap(expandPattern));
  for (const k of known) if (patterns.some((p) => matchesPattern(k, p))) found.add(k);
  return [...found].sort();
}

/** Why a socket has no client: its QEMU is gone (no socket, refused) or it did not answer (busy, hung). */
export type ConnectOutcome = { client: QmpClient } | { gone: true; error: SvError } | { gone: false; error: SvError };

export class QmpPool {
  readonly #clients = new Map<string, QmpClient>();
  /** Sockets whose client ended: true when QEMU had announced SHUTDOWN first (a clean quit), false for a crash. */
  readonly #ends = new Map<string, boolean>();
  readonly #timeoutMs: number;
  readonly #onGreeting: (c: QmpClient) => void;

  constructor(opts: { connectTimeoutMs?: number; onGreeting?: (c: QmpClient) => void } = {}) {
    this.#timeoutMs = opts.connectTimeoutMs ?? 2000;
    this.#onGreeting = opts.onGreeting ?? (() => {});
  }

  /**
   * The live client of `socket`, connecting (again) when there is none; `timeoutMs` overrides the pool's
   * bound for this attempt (cleanup waits longer for a QEMU busy draining than a listing does).
   */
  async connect(socket: string, timeoutMs = this.#timeoutMs): Promise<ConnectOutcome> {
    const held = this.#clients.get(socket);
    if (held && !held.ended) return { client: held };
    this.#clients.delete(socket);
    try {
      const client = await QmpClient.connect(socket, { connectTimeoutMs: timeoutMs });
      this.#clients.set(socket, client);
      this.#ends.delete(socket);
      let shutdown = false;
      client.onEvent((e) => {
        if (e.event === 'SHUTDOWN') shutdown = true;
        else if (e.event === ENDED) this.#ends.set(socket, shutdown);
      });
      this.#onGreeting(client);
      return { client };
    } catch (err) {
      const error = err instanceof SvError ? err : new SvError('SV_ERR_QEMU_CONNECT', String(err), { socket });
      const errno = (error.cause as NodeJS.ErrnoException | undefined)?.code;
      const gone = hasCode(error, 'SV_ERR_QEMU_CONNECT', 'SV_ERR_QEMU_GONE') && (errno === 'ENOENT' || errno === 'ECONNREFUSED');
      return { gone, error };
    }
  }

  /** How the last client of `socket` ended: 'clean' (SHUTDOWN seen), 'crash', or undefined (not seen end). */
  howEnded(socket: string): 'clean' | 'crash' | undefined {
    const e = this.#ends.get(socket);
    return e === undefined ? undefined : e ? 'clean' : 'crash';
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
