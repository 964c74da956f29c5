/**
 * A byte stream over a unix or TCP socket with exact-length reads: `read(n)` resolves with the next `n`
 * bytes once they have arrived. One reader at a time (the handshake, then the client's reply loop).
 *
 * Memory: received data is kept as a list of socket pieces until read; the reader always asks for one
 * message part whose length the codec has already checked against a cap, so what is buffered is bounded
 * by that cap plus what the socket delivered in one go. A failure (socket error, peer hang-up, timeout,
 * protocol violation decided by the reader) destroys the socket and rejects the pending and all later
 * reads with the same coded error.
 */
import { connect, type Socket } from 'node:net';
import { SvError } from '../errors/index.js';

export type Target = { path: string } | { host: string; port: number };

export function describeTarget(t: Target): string {
  return 'path' in t ? `unix:${t.path}` : `${t.host}:${t.port}`;
}

interface Waiter {
  n: number;
  resolve: (b: Buffer) => void;
  reject: (e: SvError) => void;
}

export class Wire {
  #socket: Socket;
  #pieces: Buffer[] = [];
  #buffered = 0;
  #waiter: Waiter | null = null;
  #failure: SvError | null = null;
  #closed: Promise<void>;
  readonly target: string;

  private constructor(socket: Socket, target: string) {
    this.#socket = socket;
    this.target = target;
    socket.setNoDelay?.(true);
    socket.on('data', (piece: Buffer) => {
      this.#pieces.push(piece);
      this.#buffered += piece.length;
      this.#serve();
    });
    socket.on('error', (err) => this.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD connection to ${target} failed: ${err.message}`, { target }, { cause: err })));
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('end', () => this.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD server ${target} closed the connection`, { target })));
    socket.once('close', () => this.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD connection to ${target} closed`, { target })));
  }

  /** Connect; `timeoutMs` bounds the connect itself. */
  static open(target: Target, timeoutMs: number): Promise<Wire> {
    const name = describeTarget(target);
    return new Promise((resolve, reject) => {
      const socket = 'path' in target ? connect({ path: target.path }) : connect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new SvError('SV_ERR_NBD_TIMEOUT', `NBD connect to ${name} did not complete in ${timeoutMs} ms`, { target: name, timeoutMs }));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new SvError('SV_ERR_NBD_CONNECT', `cannot connect to NBD server ${name}: ${err.message}`, { target: name }, { cause: err }));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Wire(socket, name));
      });
    });
  }

  get failure(): SvError | null {
    return this.#failure;
  }

  /** Bytes received and not yet read (tests check memory stays bounded). */
  get buffered(): number {
    return this.#buffered;
  }

  /** The next `n` bytes. */
  read(n: number): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new SvError('SV_ERR_CORE_INTERNAL', 'Wire.read called while a read is pending', {}));
    if (this.#buffered >= n) return Promise.resolve(this.#take(n));
    return new Promise((resolve, reject) => {
      this.#waiter = { n, resolve, reject };
    });
  }

  write(buf: Buffer): void {
    if (!this.#failure) this.#socket.write(buf);
  }

  /** Fail the stream (first failure wins) and destroy the socket. */
  fail(err: SvError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#pieces = [];
    this.#buffered = 0;
    const w = this.#waiter;
    this.#waiter = null;
    this.#socket.destroy();
    w?.reject(err);
  }

  /** Half-close after the last message (NBD_CMD_DISC, NBD_OPT_ABORT); resolves when the socket is closed. */
  async end(graceMs: number): Promise<void> {
    if (!this.#socket.destroyed) this.#socket.end();
    const timer = setTimeout(() => this.#socket.destroy(), graceMs);
    await this.#closed;
    clearTimeout(timer);
  }

  #serve(): void {
    const w = this.#waiter;
    if (!w || this.#buffered < w.n) return;
    this.#waiter = null;
    w.resolve(this.#take(w.n));
  }

  #take(n: number): Buffer {
    const first = this.#pieces[0];
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#pieces.shift();
      else this.#pieces[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const piece = this.#pieces[0]!;
        const part = Math.min(piece.length, n - at);
        piece.copy(out, at, 0, part);
        at += part;
        if (part === piece.length) this.#pieces.shift();
        else this.#pieces[0] = piece.subarray(part);
      }
    }
    this.#buffered -= n;
    return out;
  }
}
