/**
 * A unix-socket connection that carries one JSON value per line, shared by the QMP client (qmp.ts) and the
 * guest-agent client (guest-agent.ts). It owns the socket and a bounded LineDecoder; it delivers each line
 * to one handler and reports the end of the connection exactly once (`onClose(err?)`): a decoder error or a
 * handler's thrown error ends the connection with that error, a peer close ends it without one.
 */
import { createConnection, type Socket } from 'node:net';
import { SvError } from '../errors/index.js';
import { LineDecoder } from './line-decoder.js';

export interface LineSocketOptions {
  /** Names the peer in errors, e.g. "QMP /run/vm1.qmp". */
  peer: string;
  connectTimeoutMs: number;
  maxLineBytes: number;
}

export class LineSocket {
  readonly peer: string;
  readonly decoder: LineDecoder;
  readonly #socket: Socket;
  #lineHandler: (line: string) => void = () => {};
  #closeHandler: (err?: SvError) => void = () => {};
  #closed = false;

  private constructor(socket: Socket, opts: LineSocketOptions) {
    this.peer = opts.peer;
    this.#socket = socket;
    this.decoder = new LineDecoder(opts.peer, opts.maxLineBytes);
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('error', (err) => this.#end(new SvError('SV_ERR_QEMU_GONE', `${this.peer}: connection failed: ${err.message}`, { peer: this.peer }, { cause: err })));
    socket.on('close', () => this.#end());
  }

  /** Connect to a unix socket; SV_ERR_QEMU_CONNECT when it is missing, refuses, or does not accept in time. */
  static connect(path: string, opts: LineSocketOptions): Promise<LineSocket> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      const fail = (why: string, cause?: unknown): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new SvError('SV_ERR_QEMU_CONNECT', `${opts.peer}: cannot connect to ${path}: ${why}`, { peer: opts.peer, path }, { cause }));
      };
      const timer = setTimeout(() => fail(`no connection within ${opts.connectTimeoutMs} ms`), opts.connectTimeoutMs);
      socket.once('error', (err) => fail(err.message, err));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new LineSocket(socket, opts));
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  onLine(handler: (line: string) => void): void {
    this.#lineHandler = handler;
  }

  onClose(handler: (err?: SvError) => void): void {
    this.#closeHandler = handler;
  }

  write(data: string | Buffer): void {
    if (!this.#closed) this.#socket.write(data);
  }

  /** Close the connection; the close handler sees `err` (or nothing). */
  close(err?: SvError): void {
    this.#end(err);
  }

  #data(chunk: Buffer): void {
    if (this.#closed) return;
    try {
      for (const line of this.decoder.push(chunk)) {
        this.#lineHandler(line);
        if (this.#closed) return;
      }
    } catch (err) {
      const coded = err instanceof SvError ? err : new SvError('SV_ERR_QEMU_PROTOCOL', `${this.peer}: ${(err as Error).message}`, { peer: this.peer }, { cause: err });
      this.#end(coded);
    }
  }

  #end(err?: SvError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#closeHandler(err);
  }
}
