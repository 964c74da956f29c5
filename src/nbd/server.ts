/**
 * An NBD server (fixed newstyle, structured replies, `base:allocation`) over a table of exports, on TCP
 * (loopback unless told otherwise) or a unix socket. The handshake is server-handshake.ts, each
 * connection's transmission phase server-session.ts; both share the codec with the client (codec.ts).
 *
 * Limits (hostile clients): at most `maxConnections` connections (more are closed at once); a handshake
 * must finish within `handshakeTimeoutMs` and `maxOptions` options; each connection has its own in-flight
 * byte budget, so memory is at most maxConnections × (connectionBudgetBytes + a few MiB of socket
 * buffers), and one client stalling cannot stall the others. Nothing a client sends is allocated before
 * its length passed a cap (codec and session).
 *
 * `close()` stops listening, ends every connection (requests in flight are answered first when the
 * client is still reading) and resolves when all are gone; the caller then closes the backends.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { SvError, isSvError } from '../errors/index.js';
import type { NbdExportTable } from './backend.js';
import { serverHandshake } from './server-handshake.js';
import { Session } from './server-session.js';
import { Wire, describeTarget, type Target } from './wire.js';

export interface NbdServerOptions {
  /** Unix socket path, or host + port (port 0: any free port; host defaults to 127.0.0.1). */
  readonly listen: { path: string } | { host?: string; port: number };
  readonly exports: NbdExportTable;
  readonly maxConnections?: number;
  readonly handshakeTimeoutMs?: number;
  readonly maxOptions?: number;
  readonly connectionBudgetBytes?: number;
  readonly maxExtents?: number;
}

const DEFAULTS = { maxConnections: 16, handshakeTimeoutMs: 30_000, maxOptions: 256, connectionBudgetBytes: 64 << 20, maxExtents: 65536 } as const;

type Settings = { -readonly [K in keyof typeof DEFAULTS]: number } & { exports: NbdExportTable };

export class NbdServer {
  #server: Server;
  #sockets = new Set<Socket>();
  #sessions = new Set<Promise<void>>();
  #live = new Set<Session>();
  #opts: Settings;
  #closing = false;
  readonly address: Target;

  private constructor(server: Server, address: Target, opts: Settings) {
    this.#server = server;
    this.address = address;
    this.#opts = opts;
    server.on('connection', (socket) => this.#accept(socket));
  }

  static async listen(options: NbdServerOptions): Promise<NbdServer> {
    const opts = { ...DEFAULTS, ...options };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const v = opts[key];
      if (!Number.isSafeInteger(v) || v < 1) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `NbdServerOptions.${key} must be a positive integer, got ${v}`, { option: key, value: v });
    }
    if (opts.connectionBudgetBytes < 33 << 20) {
      throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `NbdServerOptions.connectionBudgetBytes must hold one 32 MiB request, got ${opts.connectionBudgetBytes}`, { option: 'connectionBudgetBytes' });
    }
    const server = createServer({ noDelay: true, pauseOnConnect: false });
    const where = 'path' in options.listen ? options.listen : { host: options.listen.host ?? '127.0.0.1', port: options.listen.port };
    if ('path' in where) await rm(where.path, { force: true }); // a stale socket file of a dead server
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new SvError('SV_ERR_NBD_LISTEN', `cannot listen on ${describeTarget('path' in where ? where : { host: where.host, port: where.port })}: ${err.message}`, { listen: where }, { cause: err })));
      server.listen('path' in where ? { path: where.path } : { host: where.host, port: where.port }, () => resolve());
    });
    const bound = server.address();
    const address: Target = 'path' in where ? where : { host: where.host, port: typeof bound === 'object' && bound ? bound.port : where.port };
    return new NbdServer(server, address, opts);
  }

  /** Bytes of requests and replies in flight over all connections (each connection ≤ its budget). */
  get bytesInFlight(): number {
    let n = 0;
    for (const s of this.#live) n += s.bytesInFlight;
    return n;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#sockets.size;
  }

  #accept(socket: Socket): void {
    if (this.#closing || this.#sockets.size >= this.#opts.maxConnections) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix client';
    const session = this.#serve(Wire.accept(socket, peer)).catch(() => undefined);
    this.#sessions.add(session);
    void session.finally(() => this.#sessions.delete(session));
  }

  async #serve(wire: Wire): Promise<void> {
    const timer = setTimeout(() => wire.fail(new SvError('SV_ERR_NBD_TIMEOUT', `NBD client ${wire.target} did not finish the handshake in ${this.#opts.handshakeTimeoutMs} ms`, {})), this.#opts.handshakeTimeoutMs);
    timer.unref();
    let agreed;
    try {
      agreed = await serverHandshake(wire, this.#opts.exports, this.#opts.maxOptions);
    } catch (err) {
      // A malformed option header (bad magic, data above the cap): hang up, whatever the client does next.
      wire.fail(isSvError(err) ? err : new SvError('SV_ERR_NBD_PROTOCOL', `NBD client ${wire.target}: ${String(err)}`, {}));
      return;
    } finally {
      clearTimeout(timer);
    }
    if (agreed) {
      const session = new Session(wire, agreed, { budgetBytes: this.#opts.connectionBudgetBytes, maxExtents: this.#opts.maxExtents });
      this.#live.add(session);
      try {
        await session.run();
      } finally {
        this.#live.delete(session);
      }
    }
    await wire.end(1000);
  }

  /** Stop listening and end every connection. */
  async close(): Promise<void> {
    this.#closing = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.end();
    const grace = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, 2000);
    await Promise.allSettled([...this.#sessions]);
    clearTimeout(grace);
    await stopped;
  }
}
