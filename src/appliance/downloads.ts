/**
 * Limits on image downloads running at once (GET .../disks/{disk}/image): per API token and per appliance.
 * A download holds its slot from the moment it is admitted until its response closes (finished, failed, or
 * the client went away); past a limit the request is refused with 429 SV_ERR_API_TOO_MANY_DOWNLOADS and a
 * Retry-After. Counts live in memory (a restart ends every download anyway).
 */
import { SvError } from '../errors/index.js';

/** What a refused client is told to wait, seconds: downloads take minutes, so a short poll is fair. */
export const DOWNLOAD_RETRY_AFTER_SECONDS = 5;

export class DownloadLimiter {
  readonly #max: number;
  readonly #maxPerToken: number;
  #active = 0;
  readonly #perToken = new Map<string, number>();

  constructor(max: number, maxPerToken: number) {
    this.#max = max;
    this.#maxPerToken = maxPerToken;
  }

  get active(): number {
    return this.#active;
  }

  /** Admit a download of `tokenId` or throw SV_ERR_API_TOO_MANY_DOWNLOADS; returns its release (idempotent). */
  acquire(tokenId: string): () => void {
    const mine = this.#perToken.get(tokenId) ?? 0;
    if (mine >= this.#maxPerToken) throw refused('token', this.#maxPerToken, `this API token already has ${mine} download(s) running (limit ${this.#maxPerToken})`);
    if (this.#active >= this.#max) throw refused('appliance', this.#max, `the appliance already runs ${this.#active} download(s) (limit ${this.#max})`);
    this.#active++;
    this.#perToken.set(tokenId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      const left = (this.#perToken.get(tokenId) ?? 1) - 1;
      if (left > 0) this.#perToken.set(tokenId, left);
      else this.#perToken.delete(tokenId);
    };
  }
}

function refused(scope: 'token' | 'appliance', limit: number, why: string): SvError {
  return new SvError('SV_ERR_API_TOO_MANY_DOWNLOADS', `${why}; retry in ${DOWNLOAD_RETRY_AFTER_SECONDS} s`, { scope, limit, retryAfterSeconds: DOWNLOAD_RETRY_AFTER_SECONDS });
}
