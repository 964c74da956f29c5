/**
 * Line framing for QMP and the guest agent: both speak one JSON value per line ("\n"-terminated, "\r\n"
 * tolerated). Bytes arrive in arbitrary chunks; `push` returns the complete lines they finish.
 *
 * Invariants:
 * - memory is bounded: a line longer than `maxLineBytes` (without its newline) raises SV_ERR_QEMU_PROTOCOL
 *   naming the peer, the byte offset in the stream and the cap; the decoder is then poisoned (every later
 *   `push` throws the same error), so a hostile peer cannot make us buffer without end;
 * - 0xFF never occurs in UTF-8 JSON; the guest agent uses it as a resynchronisation mark. In `resync()`
 *   mode everything up to and including the next 0xFF is discarded (stale replies of an earlier,
 *   abandoned command); outside that mode a stray 0xFF is dropped.
 */
import { SvError } from '../errors/index.js';

const NEWLINE = 0x0a;
const CR = 0x0d;
/** The guest agent's delimiter byte (guest-sync-delimited). */
export const RESYNC_BYTE = 0xff;

export class LineDecoder {
  readonly #peer: string;
  readonly #maxLineBytes: number;
  #parts: Buffer[] = [];
  #partBytes = 0;
  #offset = 0;
  #discarding = false;
  #failure: SvError | undefined;

  /** `peer` names the other side in errors (e.g. "QMP /run/vm1.qmp"). */
  constructor(peer: string, maxLineBytes: number) {
    this.#peer = peer;
    this.#maxLineBytes = maxLineBytes;
  }

  /** Drop everything received so far and all bytes until the next 0xFF. */
  resync(): void {
    this.#parts = [];
    this.#partBytes = 0;
    this.#discarding = true;
  }

  /** True while waiting for the 0xFF of a resync. */
  get discarding(): boolean {
    return this.#discarding;
  }

  /** Feed a chunk; returns the lines it completes (without the newline), decoded as UTF-8. */
  push(chunk: Buffer): string[] {
    if (this.#failure) throw this.#failure;
    const lines: string[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte === RESYNC_BYTE) {
        this.#take(chunk, start, i);
        this.#discarding = false;
        start = i + 1;
      } else if (byte === NEWLINE) {
        this.#take(chunk, start, i);
        start = i + 1;
        if (this.#discarding) continue;
        const line = Buffer.concat(this.#parts, this.#partBytes);
        this.#parts = [];
        this.#partBytes = 0;
        const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
        if (end > 0) lines.push(line.toString('utf8', 0, end));
      }
    }
    this.#take(chunk, start, chunk.length);
    this.#offset += chunk.length;
    return lines;
  }

  #take(chunk: Buffer, from: number, to: number): void {
    if (this.#discarding || to <= from) return;
    this.#partBytes += to - from;
    if (this.#partBytes > this.#maxLineBytes) {
      this.#parts = [];
      this.#failure = new SvError('SV_ERR_QEMU_PROTOCOL', `${this.#peer}: a line is longer than ${this.#maxLineBytes} bytes (stream offset ${this.#offset + to}); expected a JSON value per line`, {
        peer: this.#peer,
        offset: this.#offset + to,
        maxLineBytes: this.#maxLineBytes,
      });
      throw this.#failure;
    }
    this.#parts.push(chunk.subarray(from, to));
  }
}
