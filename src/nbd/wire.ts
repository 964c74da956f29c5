/**
 * A byte stream over a unix or TCP socket with exact-length reads: `read(n)` resolves with the next `n`
 * bytes once they have arrived. One reader at a time (the handshake, then the client's reply loop).
 *
 * Memory: one reused 1 MiB read buffer per connection; data not consumed at once is copied into a list
 * of pieces until read. While a `readInto` waits for at least 64 KiB more and nothing is buffered, the
 * socket reads straight into the caller's buffer (no copy: a READ reply's data lands where it belongs); the reader always asks for one
 * message part whose length the codec has already checked against a cap, so what is buffered is bounded
 * by that cap plus what the socket delivered in one go. A failure (socket error, peer hang-up, timeout,
 * protocol violation decided by the reader) destroys the socket and rejects the pending and all later
 * reads with the same coded error. Writes of one tick are corked together (write()).
 */
import { connect, type Socket } from 'node:net';
import { SvError } from '../errors/index.js';
import { asBuffer } from './codec-base.js';

/** Size of the reused socket read buffer (one per connection). */
const READ_BUFFER = 1 << 20;
/** A readInto waiting for at least this much more is read into directly (see the header). */
const DIRECT_MIN = 64 * 1024;
/** Accepted sockets: stop reading from the peer while this much is buffered and unread (input backpressure). */
const PAUSE_ABOVE = 4 << 20;

export type Target = { path: string } | { host: string; port: number };

export function describeTarget(t: Target): string {
  return 'path' in t ? `unix:${t.path}` : `${t.host}:${t.port}`;
}

interface Waiter {
  n: number;
  /** For readInto: bytes are copied here as they arrive (no accumulation). */
  dest: Buffer | null;
  filled: number;
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

  /** Chunks handed to the sink are views of one reused buffer (client side): leftovers must be copied. */
  #reusedChunks: boolean;
  /** write() corked the socket this tick (uncorked on setImmediate). */
  #corked = false;
  /** The waiter's buffer the socket reads into next (client side), or null: the reused buffer. */
  #direct: Buffer | null = null;
  /** Every listener this wire put on the socket (release() takes them off). */
  #detach: (() => void)[] = [];

  private constructor(socket: Socket, target: string, attach: (sink: (chunk: Buffer) => void, next: () => Buffer | null, on: (event: string, fn: (chunk: Buffer) => void) => void) => void, reusedChunks = true) {
    this.#socket = socket;
    this.target = target;
    this.#reusedChunks = reusedChunks;
    socket.setNoDelay?.(true);
    attach((chunk) => this.#onChunk(chunk), () => this.#nextTarget(), (event, fn) => this.#on(event, fn));
    this.#on('error', (err: Error) => this.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD connection to ${target} failed: ${err.message}`, { target }, { cause: err })));
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.#on('end', () => this.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD server ${target} closed the connection`, { target })));
    this.#on('close', () => this.fail(new SvError('SV_ERR_NBD_CLOSED', `NBD connection to ${target} closed`, { target })));
  }

  #on<A extends unknown[]>(event: string, fn: (...args: A) => void): void {
    this.#detach.push(() => this.#socket.off(event, fn));
    this.#socket.on(event, fn);
  }

  /** Connect; `timeoutMs` bounds the connect itself. */
  static open(target: Target, timeoutMs: number): Promise<Wire> {
    const name = describeTarget(target);
    return new Promise((resolve, reject) => {
      // Reads land in one reused buffer (fewer allocations and syscalls than 64 KiB 'data' buffers);
      // #onChunk copies out whatever the current reader does not take at once.
      // `next` may instead name the current readInto's buffer: the socket then reads straight into it.
      let sink: (chunk: Buffer) => void = () => undefined;
      let next: () => Buffer | null = () => null;
      const shared = Buffer.allocUnsafe(READ_BUFFER);
      const onread = { buffer: (): Uint8Array => next() ?? shared, callback: (n: number, buf: Uint8Array): boolean => (sink(asBuffer(buf).subarray(0, n)), true) };
      const socket = 'path' in target ? connect({ path: target.path, onread }) : connect({ host: target.host, port: target.port, onread });
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
        resolve(new Wire(socket, name, (fn, gen) => {
          sink = fn;
          next = gen;
        }));
      });
    });
  }

  /**
   * Wrap a socket a server accepted (`name` describes the peer in errors). Reads come from 'data' events:
   * each chunk is its own buffer, so nothing is copied out of a shared one.
   */
  static accept(socket: Socket, name: string): Wire {
    return new Wire(socket, name, (sink, _next, on) => on('data', sink), false);
  }

  /**
   * Hand the socket of an accepted wire over to another reader (NBD_OPT_STARTTLS: a TLS layer on the same
   * socket): this wire's listeners come off and it reads nothing more. Contract: call it only with no read
   * pending and after the last write was flushed (writeFlushed). Returns null, destroying the socket, when
   * the peer already sent bytes this wire buffered (it broke the protocol by not waiting for the reply)
   * or the connection failed.
   */
  release(): Socket | null {
    if (this.#failure || this.#buffered > 0 || this.#waiter) {
      this.fail(this.#failure ?? new SvError('SV_ERR_NBD_PROTOCOL', `NBD client ${this.target} sent data before the reply to its option`, { target: this.target }));
      return null;
    }
    for (const off of this.#detach) off();
    this.#detach = [];
    return this.#socket;
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
      this.#waiter = { n, dest: null, filled: 0, resolve, reject };
    });
  }

  /** Fill `dest` with the next `dest.length` bytes, copying each socket piece straight into it. */
  readInto(dest: Buffer): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new SvError('SV_ERR_CORE_INTERNAL', 'Wire.readInto called while a read is pending', {}));
    return new Promise((resolve, reject) => {
      this.#waiter = { n: dest.length, dest, filled: 0, resolve, reject };
      this.#serve();
    });
  }

  /**
   * Queue `buf`. Writes of one tick go out together: the first corks the socket and the socket is uncorked on
   * setImmediate (a client with many small requests in flight: a few syscalls instead of one per request).
   */
  write(buf: Buffer): void {
    if (this.#failure) return;
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      setImmediate(() => {
        this.#corked = false;
        this.#socket.uncork();
      });
    }
    this.#socket.write(buf);
  }

  /**
   * Write `bufs` back to back (nothing else can come between them: one message) and resolve once the socket
   * has handed them to the kernel, or the connection failed: the server accounts reply bytes as in flight
   * until then, so a client that stops reading cannot make it buffer without bound.
   */
  writeFlushed(...bufs: Buffer[]): Promise<void> {
    if (this.#failure || bufs.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.cork();
      for (let i = 0; i < bufs.length - 1; i++) this.#socket.write(bufs[i]!);
      this.#socket.write(bufs[bufs.length - 1]!, () => resolve());
      this.#socket.uncork();
    });
  }

  /** The connection's socket is gone (failed, or closed by either side). */
  get destroyed(): boolean {
    return this.#socket.destroyed;
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

  /** Where the socket reads next: the current readInto's buffer when it may (see the header), else null. */
  #nextTarget(): Buffer | null {
    const w = this.#waiter;
    this.#direct = w?.dest && this.#buffered === 0 && !this.#failure && w.n - w.filled >= DIRECT_MIN ? w.dest.subarray(w.filled) : null;
    return this.#direct;
  }

  /** A chunk of the reused read buffer: serve the reader from it, keep a copy of the rest. */
  #onChunk(chunk: Buffer): void {
    if (this.#failure) return;
    const direct = this.#direct;
    this.#direct = null;
    if (direct && chunk.buffer === direct.buffer && chunk.byteOffset === direct.byteOffset) {
      // Read straight into the waiter's buffer at its fill mark (nothing was buffered before it).
      const w = this.#waiter!;
      w.filled += chunk.length;
      if (w.filled === w.n) {
        this.#waiter = null;
        w.resolve(w.dest!);
      }
      return;
    }
    this.#pieces.push(chunk);
    this.#buffered += chunk.length;
    this.#serve();
    if (!this.#reusedChunks && this.#buffered > PAUSE_ABOVE) this.#socket.pause();
    const last = this.#pieces.length - 1;
    if (this.#reusedChunks && last >= 0 && this.#pieces[last]!.buffer === chunk.buffer) this.#pieces[last] = Buffer.from(this.#pieces[last]!);
  }

  #serve(): void {
    const w = this.#waiter;
    if (!w) return;
    if (w.dest) {
      const part = Math.min(this.#buffered, w.n - w.filled);
      this.#copyOut(w.dest, w.filled, part);
      w.filled += part;
      if (w.filled < w.n) return;
      this.#waiter = null;
      w.resolve(w.dest);
      return;
    }
    if (this.#buffered < w.n) return;
    this.#waiter = null;
    w.resolve(this.#take(w.n));
  }

  /** Move `n` buffered bytes into `out` at `at`. */
  #copyOut(out: Buffer, at: number, n: number): void {
    let done = 0;
    while (done < n) {
      const piece = this.#pieces[0]!;
      const part = Math.min(piece.length, n - done);
      piece.copy(out, at + done, 0, part);
      done += part;
      if (part === piece.length) this.#pieces.shift();
      else this.#pieces[0] = piece.subarray(part);
    }
    this.#buffered -= n;
    if (!this.#reusedChunks && this.#socket.isPaused() && this.#buffered <= PAUSE_ABOVE) this.#socket.resume();
  }

  #take(n: number): Buffer {
    // Always a copy: a piece may be a view of the reused read buffer.
    const out = Buffer.allocUnsafe(n);
    this.#copyOut(out, 0, n);
    return out;
  }
}
